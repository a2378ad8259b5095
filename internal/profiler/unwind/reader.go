package unwind

import "time"

// PollInterval is how often the reader of the stack events' ring buffer
// looks at it: the programs do not wake it per record (see ustack_output in
// ustack.h), only when the ring is a quarter full.
const PollInterval = 50 * time.Millisecond
