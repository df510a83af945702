package auth

import (
	"context"
	"fmt"
	"os/user"
	"strconv"
	"sync"
	"time"

	"github.com/cortexrt/cortex/internal/config"
)

// PeerCred is a unix socket caller's credentials (SO_PEERCRED).
type PeerCred struct {
	PID, UID, GID int
}

type peerKey struct{}

// WithPeer records a connection's peer credentials in ctx.
func WithPeer(ctx context.Context, p PeerCred) context.Context {
	return context.WithValue(ctx, peerKey{}, p)
}

// PeerFrom returns the peer credentials of the connection ctx belongs
// to; ok is false over TCP, or when the kernel gave none.
func PeerFrom(ctx context.Context) (PeerCred, bool) {
	p, ok := ctx.Value(peerKey{}).(PeerCred)
	return p, ok
}

// LocalRoles turns a unix socket caller's uid into an identity: root is
// admin; every other user is operator of the projects they run (Owned)
// plus the api.local_roles bindings of their uid and groups.
type LocalRoles struct {
	byUID map[int][]Binding
	byGID map[int][]Binding

	mu     sync.Mutex
	groups map[int]cachedGroups
	now    func() time.Time
}

type cachedGroups struct {
	gids []int
	at   time.Time
}

// NewLocalRoles resolves the users and groups the config names (at
// daemon start: a name that does not resolve is an error).
func NewLocalRoles(cfg []config.LocalRole) (*LocalRoles, error) {
	lr := &LocalRoles{byUID: map[int][]Binding{}, byGID: map[int][]Binding{}, groups: map[int]cachedGroups{}, now: time.Now}
	for i, c := range cfg {
		b := Binding{Role: Role(c.Role), Projects: c.Projects}
		switch {
		case c.User != "":
			uid, err := lookupID(c.User, true)
			if err != nil {
				return nil, fmt.Errorf("api.local_roles[%d].user: %w", i, err)
			}
			lr.byUID[uid] = append(lr.byUID[uid], b)
		default:
			gid, err := lookupID(c.Group, false)
			if err != nil {
				return nil, fmt.Errorf("api.local_roles[%d].group: %w", i, err)
			}
			lr.byGID[gid] = append(lr.byGID[gid], b)
		}
	}
	return lr, nil
}

func lookupID(name string, isUser bool) (int, error) {
	if n, err := strconv.Atoi(name); err == nil && n >= 0 {
		return n, nil
	}
	if isUser {
		u, err := user.Lookup(name)
		if err != nil {
			return 0, err
		}
		return strconv.Atoi(u.Uid)
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(g.Gid)
}

// Identity is the identity of local uid (primary group gid).
func (lr *LocalRoles) Identity(uid, gid int) Identity {
	if uid == 0 {
		return Root()
	}
	id := Identity{Name: "uid:" + strconv.Itoa(uid), Auth: AuthPeer, UID: uid,
		Bindings: []Binding{{Role: Operator, Owned: true}}}
	id.Bindings = append(id.Bindings, lr.byUID[uid]...)
	if len(lr.byGID) > 0 {
		seen := map[int]bool{}
		for _, g := range append([]int{gid}, lr.groupsOf(uid)...) {
			if !seen[g] {
				seen[g] = true
				id.Bindings = append(id.Bindings, lr.byGID[g]...)
			}
		}
	}
	return id
}

// groupsOf lists uid's supplementary groups (cached for a minute).
func (lr *LocalRoles) groupsOf(uid int) []int {
	lr.mu.Lock()
	c, ok := lr.groups[uid]
	lr.mu.Unlock()
	if ok && lr.now().Sub(c.at) < time.Minute {
		return c.gids
	}
	var gids []int
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		if ids, err := u.GroupIds(); err == nil {
			for _, s := range ids {
				if n, err := strconv.Atoi(s); err == nil {
					gids = append(gids, n)
				}
			}
		}
	}
	lr.mu.Lock()
	if len(lr.groups) > 4096 {
		lr.groups = map[int]cachedGroups{}
	}
	lr.groups[uid] = cachedGroups{gids: gids, at: lr.now()}
	lr.mu.Unlock()
	return gids
}
