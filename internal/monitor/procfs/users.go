package procfs

import (
	"os/user"
	"strconv"
	"time"
)

// userCache resolves uids to user names. Lookups read /etc/passwd (or NSS
// with cgo), far too slow for every new process, so names are kept forever
// and misses are retried after a minute in case the user is created later.
type userCache struct {
	names  map[uint32]string
	misses map[uint32]time.Time
}

const userMissRetry = time.Minute

func newUserCache() *userCache {
	return &userCache{names: map[uint32]string{}, misses: map[uint32]time.Time{}}
}

// name returns the user name for uid, or the uid in decimal when the
// system has no name for it.
func (c *userCache) name(uid uint32, now time.Time) string {
	if n, ok := c.names[uid]; ok {
		return n
	}
	id := strconv.FormatUint(uint64(uid), 10)
	if t, ok := c.misses[uid]; ok && now.Sub(t) < userMissRetry {
		return id
	}
	u, err := user.LookupId(id)
	if err != nil || u.Username == "" {
		c.misses[uid] = now
		return id
	}
	delete(c.misses, uid)
	c.names[uid] = u.Username
	return u.Username
}
