package registry

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/crypto/bcrypt"

	"github.com/cortexrt/cortex/internal/errdefs"
)

// bcryptCost is the work factor of stored passwords (distribution checks
// bcrypt only; 10 is htpasswd -B's default).
const bcryptCost = 10

// SetUser adds name to the htpasswd file, or changes its password. The
// password is stored as a bcrypt hash, the only form distribution accepts.
// The registry rereads the file on every request, so no restart is needed.
func (s *Site) SetUser(name, password string) error {
	if s.Insecure {
		return errdefs.New(errdefs.FailedPrecondition, "an insecure registry has no authentication; users make no sense there")
	}
	if err := validUser(name); err != nil {
		return err
	}
	if password == "" {
		return errdefs.New(errdefs.InvalidArgument, "empty password for registry user %q", name)
	}
	if len(password) > 72 {
		return errdefs.New(errdefs.InvalidArgument, "password for %q is longer than 72 bytes, bcrypt's limit", name)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcryptCost)
	if err != nil {
		return err
	}
	users, err := s.readHtpasswd()
	if err != nil {
		return err
	}
	users[name] = string(hash)
	var b bytes.Buffer
	for _, u := range sortedKeys(users) {
		fmt.Fprintf(&b, "%s:%s\n", u, users[u])
	}
	return writeFileAtomic(s.HtpasswdPath, b.Bytes(), 0o600)
}

// Users lists the htpasswd file's user names, sorted.
func (s *Site) Users() ([]string, error) {
	users, err := s.readHtpasswd()
	if err != nil {
		return nil, err
	}
	return sortedKeys(users), nil
}

// CheckPassword reports whether password is name's.
func (s *Site) CheckPassword(name, password string) bool {
	users, err := s.readHtpasswd()
	if err != nil {
		return false
	}
	h, ok := users[name]
	return ok && bcrypt.CompareHashAndPassword([]byte(h), []byte(password)) == nil
}

func validUser(name string) error {
	if name == "" || len(name) > 128 || strings.ContainsAny(name, ": \t\r\n") {
		return errdefs.WithHint(errdefs.New(errdefs.InvalidArgument, "registry user %q: a name is 1-128 characters without ':' or white space", name), "e.g. --user ci")
	}
	return nil
}

func (s *Site) readHtpasswd() (map[string]string, error) {
	users := map[string]string{}
	data, err := os.ReadFile(s.HtpasswdPath)
	if errors.Is(err, os.ErrNotExist) {
		return users, nil
	}
	if err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, hash, ok := strings.Cut(line, ":")
		if !ok || name == "" || hash == "" {
			return nil, errdefs.New(errdefs.InvalidArgument, "%s:%d: not user:bcrypt-hash", s.HtpasswdPath, n)
		}
		users[name] = hash
	}
	return users, sc.Err()
}
