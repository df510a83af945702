package oci

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"

	"github.com/cortexrt/cortex/internal/errdefs"
)

// Keys are ed25519, stored as PEM: the private key as PKCS#8 ("PRIVATE
// KEY"), the public key as PKIX ("PUBLIC KEY"). These are the files
// `cortex key generate` writes and also what OpenSSL writes:
//
//	openssl genpkey -algorithm ed25519 -out cortex.key
//	openssl pkey -in cortex.key -pubout -out cortex.key.pub

// GenerateKey makes a new ed25519 key pair and returns both halves as PEM.
func GenerateKey() (privPEM, pubPEM []byte, err error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	pk, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, nil, err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}),
		pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), nil
}

// ParsePrivateKey reads an ed25519 private key from PEM (PKCS#8).
func ParsePrivateKey(name string, data []byte) (ed25519.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, keyErr(name, "is not a PEM file")
	}
	if block.Type != "PRIVATE KEY" {
		return nil, keyErr(name, fmt.Sprintf("holds a %q block, not a PKCS#8 \"PRIVATE KEY\"", block.Type))
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, keyErr(name, err.Error())
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, keyErr(name, fmt.Sprintf("is a %T key; signing keys are ed25519", k))
	}
	return priv, nil
}

// ParsePublicKey reads an ed25519 public key from PEM (PKIX).
func ParsePublicKey(name string, data []byte) (ed25519.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, keyErr(name, "is not a PEM file")
	}
	if block.Type == "PRIVATE KEY" {
		return nil, errdefs.WithHint(keyErr(name, "is a private key"), "verify with the public half (cortex key generate wrote it as KEY.pub)")
	}
	if block.Type != "PUBLIC KEY" {
		return nil, keyErr(name, fmt.Sprintf("holds a %q block, not a PKIX \"PUBLIC KEY\"", block.Type))
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, keyErr(name, err.Error())
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, keyErr(name, fmt.Sprintf("is a %T key; signing keys are ed25519", k))
	}
	return pub, nil
}

// LoadPrivateKey and LoadPublicKey read a key file.
func LoadPrivateKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fileErr(path, err)
	}
	return ParsePrivateKey(path, b)
}

// LoadPublicKey reads a public key file.
func LoadPublicKey(path string) (ed25519.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fileErr(path, err)
	}
	return ParsePublicKey(path, b)
}

func fileErr(path string, err error) error {
	if errors.Is(err, os.ErrNotExist) {
		return errdefs.WithHint(errdefs.New(errdefs.InvalidArgument, "key %s does not exist", path), "make a key pair with: cortex key generate "+path)
	}
	return errdefs.Wrap(errdefs.InvalidArgument, fmt.Errorf("key %s: %w", path, err))
}

func keyErr(name, what string) error {
	return errdefs.WithHint(errdefs.New(errdefs.InvalidArgument, "key %s %s", name, what),
		"use an ed25519 key in PEM: cortex key generate, or openssl genpkey -algorithm ed25519")
}

// KeyID names a public key: "sha256:" and the hex SHA-256 of its PKIX DER.
func KeyID(pub ed25519.PublicKey) string {
	der, _ := x509.MarshalPKIXPublicKey(pub)
	h := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(h[:])
}

// Signature is the content of a signature artifact's layer.
type Signature struct {
	Version   int    `json:"version"`   // 1
	Algorithm string `json:"algorithm"` // "ed25519"
	KeyID     string `json:"key_id"`
	Manifest  string `json:"manifest"` // digest of the signed bundle manifest
	Bundle    string `json:"bundle"`   // the bundle's index digest
	Value     []byte `json:"signature"`
}

// signedBytes is what a signature covers: the manifest digest (which pins
// the layer's digest and the annotations) and the bundle digest, in a
// form that cannot be confused with anything else ed25519 signs.
func signedBytes(manifestDigest, bundleDigest string) []byte {
	return []byte("cortex-bundle-signature/1\nmanifest " + manifestDigest + "\nbundle " + bundleDigest + "\n")
}

// Sign signs a bundle manifest.
func Sign(priv ed25519.PrivateKey, manifestDigest, bundleDigest string) Signature {
	return Signature{
		Version:   1,
		Algorithm: "ed25519",
		KeyID:     KeyID(priv.Public().(ed25519.PublicKey)),
		Manifest:  manifestDigest,
		Bundle:    bundleDigest,
		Value:     ed25519.Sign(priv, signedBytes(manifestDigest, bundleDigest)),
	}
}

// Verify checks that s is pub's signature over manifestDigest and
// bundleDigest.
func (s Signature) Verify(pub ed25519.PublicKey, manifestDigest, bundleDigest string) error {
	switch {
	case s.Version != 1 || s.Algorithm != "ed25519":
		return fmt.Errorf("unsupported signature version %d algorithm %q", s.Version, s.Algorithm)
	case s.KeyID != KeyID(pub):
		return fmt.Errorf("signed by key %s, not %s", s.KeyID, KeyID(pub))
	case s.Manifest != manifestDigest:
		return fmt.Errorf("signs manifest %s, not %s", s.Manifest, manifestDigest)
	case s.Bundle != bundleDigest:
		return fmt.Errorf("signs bundle %s, not %s", s.Bundle, bundleDigest)
	case !ed25519.Verify(pub, signedBytes(manifestDigest, bundleDigest), s.Value):
		return errors.New("the signature does not verify: the bundle or the signature was altered")
	}
	return nil
}
