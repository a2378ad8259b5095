package profiles

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
)

// HTLHash returns the OpenTelemetry eBPF profiler's file id of the file at
// path, the value of process.executable.build_id.htlhash: SHA-256 over the
// first 4 KiB (head), the last 4 KiB (tail) and the length as a big-endian
// uint64, truncated to 128 bits, in hex. It identifies a binary that has
// no build id, and lets a backend match contprof's mappings with the eBPF
// profiler's.
func HTLHash(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return HTLHashOf(f)
}

// HTLHashOf is HTLHash of the file r reads (from its start, whatever its
// offset).
func HTLHashOf(r io.ReadSeeker) (string, error) {
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return "", fmt.Errorf("htlhash: %w", err)
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.LimitReader(r, 4096)); err != nil {
		return "", fmt.Errorf("htlhash: head: %w", err)
	}
	size, err := r.Seek(0, io.SeekEnd)
	if err != nil {
		return "", fmt.Errorf("htlhash: %w", err)
	}
	if _, err := r.Seek(-min(size, 4096), io.SeekEnd); err != nil {
		return "", fmt.Errorf("htlhash: %w", err)
	}
	if _, err := io.Copy(h, r); err != nil {
		return "", fmt.Errorf("htlhash: tail: %w", err)
	}
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(size))
	h.Write(n[:])
	return hex.EncodeToString(h.Sum(nil)[:16]), nil
}
