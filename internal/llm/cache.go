package llm

import (
	"container/list"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cortexrt/cortex/internal/llm/canon"
)

// cacheVersion is part of every key; bump it when the stored form changes.
const cacheVersion = 1

// cacheKey is the SHA-256 of the canonical request (alias, messages,
// parameters) and the alias's targets. The caller's identity, the stream
// flag and the wire format it arrived in are not part of it, so a streamed
// answer serves a plain request and the other way round.
func cacheKey(rt *route, req *canon.Request) string {
	k := *req
	if len(k.Extra) == 0 {
		k.Family = ""
	}
	b, _ := json.Marshal(struct {
		V       int            `json:"v"`
		Targets string         `json:"targets"`
		Req     *canon.Request `json:"req"`
	}{cacheVersion, rt.fingerprint, &k})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// diskCache is the exact-match response cache: one JSON file per answer in
// dir, expiring after ttl, with the least recently used removed first when
// the files exceed max bytes. The index lives in memory and is rebuilt from
// the directory at start (file mtime is the time of storage).
type diskCache struct {
	dir string
	ttl time.Duration
	max int64
	now func() time.Time

	mu    sync.Mutex
	index map[string]*list.Element // key -> element holding *cacheEntry
	lru   *list.List               // front: most recently used
	total int64
}

type cacheEntry struct {
	key    string
	size   int64
	stored time.Time
}

type cachedAnswer struct {
	Stored   time.Time       `json:"stored"`
	Alias    string          `json:"alias"`
	Provider string          `json:"provider"`
	Response *canon.Response `json:"response"`
}

func openCache(dir string, ttl time.Duration, max int64, now func() time.Time) (*diskCache, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create llm cache dir: %w", err)
	}
	c := &diskCache{dir: dir, ttl: ttl, max: max, now: now, index: map[string]*list.Element{}, lru: list.New()}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read llm cache dir: %w", err)
	}
	type found struct {
		key  string
		size int64
		mt   time.Time
	}
	var all []found
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, ".tmp-") {
			_ = os.Remove(filepath.Join(dir, name))
			continue
		}
		key, ok := strings.CutSuffix(name, ".json")
		if !ok || len(key) != 64 {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		all = append(all, found{key, info.Size(), info.ModTime()})
	}
	// Oldest at the back, so eviction starts with them.
	sort.Slice(all, func(i, j int) bool { return all[i].mt.Before(all[j].mt) })
	for _, f := range all {
		c.insert(&cacheEntry{key: f.key, size: f.size, stored: f.mt})
	}
	c.mu.Lock()
	c.evictLocked()
	c.mu.Unlock()
	return c, nil
}

func (c *diskCache) insert(e *cacheEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.index[e.key]; ok {
		c.total -= old.Value.(*cacheEntry).size
		c.lru.Remove(old)
	}
	c.index[e.key] = c.lru.PushFront(e)
	c.total += e.size
}

func (c *diskCache) path(key string) string { return filepath.Join(c.dir, key+".json") }

// get returns the stored answer for key, if fresh.
func (c *diskCache) get(key string) (*cachedAnswer, bool) {
	c.mu.Lock()
	el, ok := c.index[key]
	if !ok {
		c.mu.Unlock()
		return nil, false
	}
	e := el.Value.(*cacheEntry)
	if c.ttl > 0 && c.now().Sub(e.stored) > c.ttl {
		c.removeLocked(el)
		c.mu.Unlock()
		return nil, false
	}
	c.lru.MoveToFront(el)
	c.mu.Unlock()
	b, err := os.ReadFile(c.path(key))
	if err != nil {
		c.drop(key)
		return nil, false
	}
	var a cachedAnswer
	if err := json.Unmarshal(b, &a); err != nil || a.Response == nil {
		c.drop(key)
		return nil, false
	}
	return &a, true
}

// put stores an answer atomically (temp file, then rename) and evicts the
// least recently used entries over the size cap.
func (c *diskCache) put(key string, a *cachedAnswer) error {
	b, err := json.Marshal(a)
	if err != nil {
		return err
	}
	if int64(len(b)) > c.max {
		return nil
	}
	f, err := os.CreateTemp(c.dir, ".tmp-")
	if err != nil {
		return fmt.Errorf("write llm cache entry: %w", err)
	}
	_, werr := f.Write(b)
	cerr := f.Close()
	if werr != nil || cerr != nil {
		_ = os.Remove(f.Name())
		return fmt.Errorf("write llm cache entry: %w", firstErr(werr, cerr))
	}
	// The mtime is the time of storage, read back when the index is
	// rebuilt at start.
	_ = os.Chtimes(f.Name(), a.Stored, a.Stored)
	if err := os.Rename(f.Name(), c.path(key)); err != nil {
		_ = os.Remove(f.Name())
		return fmt.Errorf("write llm cache entry: %w", err)
	}
	c.insert(&cacheEntry{key: key, size: int64(len(b)), stored: a.Stored})
	c.mu.Lock()
	c.evictLocked()
	c.mu.Unlock()
	return nil
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

func (c *diskCache) drop(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.index[key]; ok {
		c.removeLocked(el)
	}
}

func (c *diskCache) removeLocked(el *list.Element) {
	e := el.Value.(*cacheEntry)
	c.lru.Remove(el)
	delete(c.index, e.key)
	c.total -= e.size
	_ = os.Remove(c.path(e.key))
}

func (c *diskCache) evictLocked() {
	for c.total > c.max && c.lru.Len() > 0 {
		c.removeLocked(c.lru.Back())
	}
}

// stats reports the number of entries and their bytes.
func (c *diskCache) stats() (int, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len(), c.total
}
