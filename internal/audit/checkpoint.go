package audit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// Checkpoints are C2SP tlog-checkpoint bodies (origin, tree size, base64
// root hash, one per line) in signed notes (C2SP signed-note, ed25519),
// the formats of the Go checksum database and of transparency-dev's logs,
// so any tool that reads those can check a kept one. golang.org/x/mod's
// note package signs and verifies them.

// Key files in the audit directory.
const (
	// SignerFile holds the note signer key (PRIVATE+KEY+...), mode 0600.
	SignerFile = "key"
	// VerifierFile holds the note verifier key (NAME+HASH+KEY).
	VerifierFile = "key.pub"
)

// Checkpoint is a verified checkpoint.
type Checkpoint struct {
	Origin string
	Size   uint64
	Root   []byte
	// Note is the signed note as written.
	Note []byte
}

// checkpointBody is the C2SP tlog-checkpoint body.
func checkpointBody(origin string, size uint64, root []byte) string {
	return origin + "\n" + strconv.FormatUint(size, 10) + "\n" + base64.StdEncoding.EncodeToString(root) + "\n"
}

// signCheckpoint signs the tree of size entries with root.
func signCheckpoint(s note.Signer, size uint64, root []byte) ([]byte, error) {
	return note.Sign(&note.Note{Text: checkpointBody(s.Name(), size, root)}, s)
}

// OpenCheckpoint verifies a signed checkpoint with the verifier key vkey
// and parses it. It is strict: the note must be exactly what signing its
// body would write (no other text, canonical base64), so that no byte of
// a kept checkpoint can change unnoticed.
func OpenCheckpoint(msg []byte, vkey string) (Checkpoint, error) {
	v, err := note.NewVerifier(strings.TrimSpace(vkey))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("verifier key: %v", err)
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("checkpoint signature: %v", err)
	}
	if len(n.Sigs) != 1 || len(n.UnverifiedSigs) != 0 {
		return Checkpoint{}, fmt.Errorf("checkpoint has %d signatures; want exactly the log's", len(n.Sigs)+len(n.UnverifiedSigs))
	}
	sig, err := base64.StdEncoding.DecodeString(n.Sigs[0].Base64)
	if err != nil || base64.StdEncoding.EncodeToString(sig) != n.Sigs[0].Base64 {
		return Checkpoint{}, fmt.Errorf("checkpoint signature is not canonical base64")
	}
	if want := n.Text + "\n\u2014 " + n.Sigs[0].Name + " " + n.Sigs[0].Base64 + "\n"; want != string(msg) {
		return Checkpoint{}, fmt.Errorf("checkpoint is not in canonical form (the bytes were changed)")
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) != 4 || lines[3] != "" {
		return Checkpoint{}, fmt.Errorf("checkpoint body has %d lines; want origin, size and root", len(lines)-1)
	}
	if lines[0] != v.Name() {
		return Checkpoint{}, fmt.Errorf("checkpoint origin %q is not the key's name %q", lines[0], v.Name())
	}
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil || strconv.FormatUint(size, 10) != lines[1] {
		return Checkpoint{}, fmt.Errorf("checkpoint size %q is not a number", lines[1])
	}
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != hasher.Size() || base64.StdEncoding.EncodeToString(root) != lines[2] {
		return Checkpoint{}, fmt.Errorf("checkpoint root %q is not a base64 SHA-256 hash", lines[2])
	}
	return Checkpoint{Origin: lines[0], Size: size, Root: root, Note: msg}, nil
}

// loadKeys reads the directory's signer key, making a new pair (with a
// random log name) when there is none.
func loadKeys(dir string) (note.Signer, string, error) {
	skPath, vkPath := filepath.Join(dir, SignerFile), filepath.Join(dir, VerifierFile)
	sk, err := os.ReadFile(skPath)
	if errors.Is(err, os.ErrNotExist) {
		var id [6]byte
		if _, err := rand.Read(id[:]); err != nil {
			return nil, "", err
		}
		skey, vkey, err := note.GenerateKey(rand.Reader, "cortex-audit-"+hex.EncodeToString(id[:]))
		if err != nil {
			return nil, "", err
		}
		if err := writeFileSync(vkPath, []byte(vkey+"\n"), 0o600); err != nil {
			return nil, "", err
		}
		if err := writeFileSync(skPath, []byte(skey+"\n"), 0o600); err != nil {
			return nil, "", err
		}
		sk = []byte(skey + "\n")
	} else if err != nil {
		return nil, "", err
	}
	s, err := note.NewSigner(strings.TrimSpace(string(sk)))
	if err != nil {
		return nil, "", fmt.Errorf("%s: %v", skPath, err)
	}
	vk, err := os.ReadFile(vkPath)
	if err != nil {
		return nil, "", err
	}
	if err := keysMatch(sk, vk); err != nil {
		return nil, "", err
	}
	return s, strings.TrimSpace(string(vk)), nil
}

// keysMatch checks that the signer key skey (PRIVATE+KEY+NAME+HASH+KEY)
// is the private half of the verifier key vkey, both files exactly as
// written.
func keysMatch(skey, vkey []byte) error {
	if !bytes.HasSuffix(skey, []byte("\n")) || bytes.Count(skey, []byte("\n")) != 1 {
		return fmt.Errorf("%s: not one line", SignerFile)
	}
	if !bytes.HasSuffix(vkey, []byte("\n")) || bytes.Count(vkey, []byte("\n")) != 1 {
		return fmt.Errorf("%s: not one line", VerifierFile)
	}
	parts := strings.SplitN(strings.TrimSpace(string(skey)), "+", 5)
	if len(parts) != 5 || parts[0] != "PRIVATE" || parts[1] != "KEY" {
		return fmt.Errorf("%s: not a note signer key", SignerFile)
	}
	raw, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 || base64.StdEncoding.EncodeToString(raw) != parts[4] {
		return fmt.Errorf("%s: not an ed25519 note signer key", SignerFile)
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	want, err := note.NewEd25519VerifierKey(parts[2], pub)
	if err != nil {
		return fmt.Errorf("%s: %v", SignerFile, err)
	}
	// The signer key, written canonically: its hash in lowercase hex.
	hash := want[len(parts[2])+1 : len(parts[2])+9]
	if s, err := note.NewSigner(strings.TrimSpace(string(skey))); err != nil || parts[3] != hash || fmt.Sprintf("%08x", s.KeyHash()) != hash {
		return fmt.Errorf("%s: not a valid note signer key (its hash does not match its key)", SignerFile)
	}
	if strings.TrimSpace(string(vkey)) != want {
		return fmt.Errorf("%s does not match %s (one of the two was changed)", VerifierFile, SignerFile)
	}
	return nil
}

// writeFileSync writes a new file (failing if it exists) and syncs it.
func writeFileSync(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
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
	return f.Close()
}
