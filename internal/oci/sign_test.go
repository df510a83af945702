package oci

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
)

func TestKeysRoundTrip(t *testing.T) {
	privPEM, pubPEM, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	priv, err := ParsePrivateKey("k", privPEM)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ParsePublicKey("k.pub", pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Equal(priv.Public()) {
		t.Fatal("public key does not match the private key")
	}
	if _, err := ParsePublicKey("k", privPEM); err == nil || !strings.Contains(err.Error(), "is a private key") {
		t.Errorf("a private key as verify key: %v", err)
	}
	if _, err := ParsePrivateKey("k.pub", pubPEM); err == nil {
		t.Error("a public key accepted as signing key")
	}
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(ec)
	if _, err := ParsePrivateKey("ec", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); err == nil || !strings.Contains(err.Error(), "ed25519") {
		t.Errorf("an ECDSA key: %v", err)
	}
	if _, err := ParsePublicKey("junk", []byte("not pem")); err == nil {
		t.Error("junk accepted")
	}
}

func TestSignatureVerify(t *testing.T) {
	privPEM, _, _ := GenerateKey()
	priv, _ := ParsePrivateKey("k", privPEM)
	otherPEM, _, _ := GenerateKey()
	other, _ := ParsePrivateKey("o", otherPEM)
	const m, b = "sha256:1111111111111111111111111111111111111111111111111111111111111111", "sha256:2222222222222222222222222222222222222222222222222222222222222222"
	sig := Sign(priv, m, b)
	pub := priv.Public().(ed25519.PublicKey)
	if err := sig.Verify(pub, m, b); err != nil {
		t.Fatalf("valid signature: %v", err)
	}
	tests := []struct {
		name   string
		mutate func(*Signature)
		key    ed25519.PublicKey
		m, b   string
		want   string
	}{
		{"other manifest", nil, nil, "sha256:3333333333333333333333333333333333333333333333333333333333333333", b, "signs manifest"},
		{"other bundle", nil, nil, m, "sha256:3333333333333333333333333333333333333333333333333333333333333333", "signs bundle"},
		{"other key", nil, other.Public().(ed25519.PublicKey), m, b, "signed by key"},
		{"flipped signature", func(s *Signature) { s.Value[0] ^= 1 }, nil, m, b, "does not verify"},
		{"retargeted: fields rewritten, signature kept", func(s *Signature) {
			s.Manifest = "sha256:3333333333333333333333333333333333333333333333333333333333333333"
		}, nil, "sha256:3333333333333333333333333333333333333333333333333333333333333333", b, "does not verify"},
		{"unknown algorithm", func(s *Signature) { s.Algorithm = "rsa" }, nil, m, b, "unsupported"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := sig
			s.Value = append([]byte(nil), sig.Value...)
			if tc.mutate != nil {
				tc.mutate(&s)
			}
			key := tc.key
			if key == nil {
				key = pub
			}
			err := s.Verify(key, tc.m, tc.b)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Verify = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
