package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cortexrt/cortex/internal/config"
	"github.com/cortexrt/cortex/internal/errdefs"
)

// Key is an API key's record. The secret itself is never stored: only
// HMAC-SHA256(the daemon's key, secret). Secrets are 256 random bits,
// so a slow password hash (argon2id, scrypt) would add no strength
// against guessing, only cost on every request (BenchmarkKeyHash); the
// HMAC's daemon key (auth/hmac.key, 0600) means a copy of keys.json
// alone does not even let one test a guessed secret offline.
type Key struct {
	Name string `json:"name"`
	// ID is a short random id, shown in lists and the audit log.
	ID        string    `json:"id"`
	Role      Role      `json:"role"`
	Projects  []string  `json:"projects,omitempty"`
	Hash      string    `json:"hash"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	RevokedAt time.Time `json:"revoked_at,omitzero"`
	// Addresses are the client addresses it was used from over TCP
	// (at most maxAddresses, newest last).
	Addresses []string `json:"addresses,omitempty"`
}

// KeyPrefix starts every API key secret.
const KeyPrefix = "cortex_"

const maxAddresses = 16

// Store holds the API keys and the client certificates issued, under
// var/lib/cortex/auth (0700; every file 0600). It is safe for concurrent
// use.
type Store struct {
	dir     string
	now     func() time.Time
	hmacKey []byte

	mu     sync.RWMutex
	keys   []Key
	byHash map[string]int
	certs  []Cert
	ca     *CA
}

// OpenStore opens (or creates) the store in dir, with its HMAC key and
// its CA.
func OpenStore(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, err
	}
	s := &Store{dir: dir, now: time.Now}
	k, err := readOrCreate(filepath.Join(dir, "hmac.key"), func() ([]byte, error) {
		b := make([]byte, 32)
		_, err := rand.Read(b)
		return []byte(hex.EncodeToString(b) + "\n"), err
	})
	if err != nil {
		return nil, fmt.Errorf("auth: hmac key: %w", err)
	}
	if s.hmacKey, err = hex.DecodeString(strings.TrimSpace(string(k))); err != nil || len(s.hmacKey) != 32 {
		return nil, fmt.Errorf("auth: %s is damaged", filepath.Join(dir, "hmac.key"))
	}
	if err := readJSON(filepath.Join(dir, "keys.json"), &s.keys); err != nil {
		return nil, err
	}
	if err := readJSON(filepath.Join(dir, "certs.json"), &s.certs); err != nil {
		return nil, err
	}
	s.index()
	if s.ca, err = loadCA(dir); err != nil {
		return nil, fmt.Errorf("auth: CA: %w", err)
	}
	return s, nil
}

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

func (s *Store) index() {
	s.byHash = map[string]int{}
	for i, k := range s.keys {
		s.byHash[k.Hash] = i
	}
}

func (s *Store) hash(secret string) string {
	m := hmac.New(sha256.New, s.hmacKey)
	m.Write([]byte(secret))
	return hex.EncodeToString(m.Sum(nil))
}

var keyName = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)

// CheckName reports whether n may name a key or a certificate.
func CheckName(n string) error {
	if !keyName.MatchString(n) {
		return errdefs.WithHint(errdefs.New(errdefs.InvalidArgument, "%q is not a name", n), "use lowercase letters, digits, '.', '_' and '-', e.g. ci-deploy")
	}
	return nil
}

// checkBinding validates a role and project patterns for a key or cert.
func checkBinding(role string, projects []string) (Role, error) {
	r, err := ParseRole(role)
	if err != nil {
		return "", errdefs.Wrap(errdefs.InvalidArgument, err)
	}
	for _, p := range projects {
		if err := config.CheckProjectPattern(p); err != nil {
			return "", errdefs.Wrap(errdefs.InvalidArgument, err)
		}
	}
	return r, nil
}

// CreateKey makes a key and returns its record and its secret (shown
// once; only its hash is kept). ttl 0 means it does not expire.
func (s *Store) CreateKey(name, role string, projects []string, ttl time.Duration) (Key, string, error) {
	if err := CheckName(name); err != nil {
		return Key{}, "", err
	}
	r, err := checkBinding(role, projects)
	if err != nil {
		return Key{}, "", err
	}
	if ttl < 0 {
		return Key{}, "", errdefs.New(errdefs.InvalidArgument, "expiry must be in the future")
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return Key{}, "", err
	}
	secret := KeyPrefix + base64.RawURLEncoding.EncodeToString(raw)
	id := make([]byte, 4)
	_, _ = rand.Read(id)
	now := s.now().UTC()
	k := Key{Name: name, ID: hex.EncodeToString(id), Role: r, Projects: projects, Hash: s.hash(secret), CreatedAt: now}
	if ttl > 0 {
		k.ExpiresAt = now.Add(ttl)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range s.keys {
		if o.Name == name && o.RevokedAt.IsZero() {
			return Key{}, "", errdefs.WithHint(errdefs.New(errdefs.AlreadyExists, "a key named %q exists", name), "revoke it first (cortex auth key revoke "+name+") or choose another name")
		}
	}
	keys := append(slices.Clone(s.keys), k)
	if err := writeJSON(filepath.Join(s.dir, "keys.json"), keys); err != nil {
		return Key{}, "", err
	}
	s.keys = keys
	s.index()
	return k, secret, nil
}

// Keys lists every key, revoked and expired ones included.
func (s *Store) Keys() []Key {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.Clone(s.keys)
}

// RevokeKey revokes the live key named name.
func (s *Store) RevokeKey(name string) (Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, k := range s.keys {
		if k.Name == name && k.RevokedAt.IsZero() {
			keys := slices.Clone(s.keys)
			keys[i].RevokedAt = s.now().UTC()
			if err := writeJSON(filepath.Join(s.dir, "keys.json"), keys); err != nil {
				return Key{}, err
			}
			s.keys = keys
			return keys[i], nil
		}
	}
	return Key{}, errdefs.WithHint(errdefs.New(errdefs.NotFound, "no live key named %q", name), "cortex auth key list")
}

// AuthenticateKey finds the key of secret. remote is the client's
// address over TCP ("" over the unix socket); newAddr reports its first
// use from there (after a use from elsewhere).
func (s *Store) AuthenticateKey(secret, remote string) (Identity, bool, error) {
	if !strings.HasPrefix(secret, KeyPrefix) {
		return Identity{}, false, errdefs.New(errdefs.Unauthenticated, "not a cortex API key")
	}
	h := s.hash(secret)
	s.mu.RLock()
	i, ok := s.byHash[h]
	var k Key
	if ok {
		k = s.keys[i]
	}
	s.mu.RUnlock()
	if !ok || subtle.ConstantTimeCompare([]byte(k.Hash), []byte(h)) != 1 {
		return Identity{}, false, errdefs.New(errdefs.Unauthenticated, "API key not recognised")
	}
	now := s.now()
	switch {
	case !k.RevokedAt.IsZero():
		return Identity{}, false, errdefs.New(errdefs.Unauthenticated, "API key %q (%s) was revoked at %s", k.Name, k.ID, k.RevokedAt.Format(time.RFC3339))
	case !k.ExpiresAt.IsZero() && !now.Before(k.ExpiresAt):
		return Identity{}, false, errdefs.New(errdefs.Unauthenticated, "API key %q (%s) expired at %s", k.Name, k.ID, k.ExpiresAt.Format(time.RFC3339))
	}
	newAddr := false
	if remote != "" && !slices.Contains(k.Addresses, remote) {
		newAddr = len(k.Addresses) > 0
		s.noteKeyAddress(i, remote)
	}
	return Identity{Name: "key:" + k.Name, Auth: AuthKey, Credential: k.ID, UID: -1,
		Bindings: []Binding{{Role: k.Role, Projects: k.Projects}}}, newAddr, nil
}

// noteKeyAddress records a key's new client address (best effort: a
// failure to persist only means the address is new again next time).
func (s *Store) noteKeyAddress(i int, remote string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := slices.Clone(s.keys)
	if i >= len(keys) || slices.Contains(keys[i].Addresses, remote) {
		return
	}
	keys[i].Addresses = appendAddress(keys[i].Addresses, remote)
	if writeJSON(filepath.Join(s.dir, "keys.json"), keys) == nil {
		s.keys = keys
	}
}

func appendAddress(addrs []string, a string) []string {
	addrs = append(slices.Clone(addrs), a)
	if len(addrs) > maxAddresses {
		addrs = addrs[len(addrs)-maxAddresses:]
	}
	return addrs
}

// readOrCreate returns path's content, creating it (0600) with make's
// when it does not exist.
func readOrCreate(path string, make func() ([]byte, error)) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		return b, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	b, err = make()
	if err != nil {
		return nil, err
	}
	return b, writeFileAtomic(path, b)
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("auth: %s: %w", path, err)
	}
	return nil
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(path, append(b, '\n'))
}

// writeFileAtomic writes path (0600) through a temporary file and a
// rename, synced.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
