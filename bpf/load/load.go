//go:build linux

// Package load loads a bpf2go collection with a loader's settings: map
// sizes and the constants the program reads (volatile const), with one
// error shape for every program.
package load

import (
	"errors"
	"fmt"
	"sort"

	"github.com/cilium/ebpf"
)

// Settings are applied to the spec before it is loaded.
type Settings struct {
	// Entries sets the capacity of maps by name; 0 keeps the program's.
	Entries map[string]uint32
	// Vars sets global variables by name.
	Vars map[string]any
}

// Load applies s to spec and loads it into objs (a bpf2go objects struct);
// what names the program in errors ("on-CPU sampler").
func Load(spec *ebpf.CollectionSpec, s Settings, objs any, what string) error {
	for name, n := range s.Entries {
		if n > 0 {
			spec.Maps[name].MaxEntries = n
		}
	}
	names := make([]string, 0, len(s.Vars))
	for name := range s.Vars {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := spec.Variables[name].Set(s.Vars[name]); err != nil {
			return fmt.Errorf("load %s: set %s: %w", what, name, err)
		}
	}
	if err := spec.LoadAndAssign(objs, nil); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return fmt.Errorf("load %s: verifier rejected the program: %+v", what, ve)
		}
		return fmt.Errorf("load %s: %w", what, err)
	}
	return nil
}
