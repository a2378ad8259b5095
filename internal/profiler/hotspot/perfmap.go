//go:build linux

package hotspot

import (
	"context"
	"fmt"
	"strings"
)

// PerfMapCommand is the diagnostic command that makes the JVM write
// /tmp/perf-<pid>.map (JDK 17+). Each run rewrites the whole file.
const PerfMapCommand = "Compiler.perfmap"

// DumpPerfMap asks the JVM to write its perf map: one line per compiled
// method ("void JSplit.javaAlpha(long)") and per code blob (Interpreter,
// stubs). An error wrapping ErrTooOld means the JVM predates the command.
func DumpPerfMap(ctx context.Context, opts Options, t *Target) error {
	res, err := Jcmd(ctx, opts, t, PerfMapCommand)
	if err != nil {
		return err
	}
	return checkResult(res, PerfMapCommand)
}

func checkResult(res Result, command string) error {
	out := strings.TrimSpace(res.Output)
	// A JVM that does not know the command answers with an exception
	// (result code -1 from JDK 9 on, 0 with the message before).
	if strings.Contains(out, "Unknown diagnostic command") || strings.Contains(out, "Invalid command") {
		return fmt.Errorf("%w: %s is not supported (it needs JDK 17 or later): %s", ErrTooOld, command, firstLine(out))
	}
	if res.Code != 0 {
		return fmt.Errorf("%s: the JVM answered code %d: %s", command, res.Code, firstLine(out))
	}
	return nil
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}
