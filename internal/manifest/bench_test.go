package manifest

import (
	"bytes"
	"os"
	"testing"
)

// BenchmarkCheckSeed measures Parse+Validate+Resolve of the seed swarm.
func BenchmarkCheckSeed(b *testing.B) {
	data, err := os.ReadFile("testdata/seed-swarm/cortex.yaml")
	if err != nil {
		b.Fatal(err)
	}
	opts := ValidateOptions{HostCPUs: 2, ProjectDir: "testdata/seed-swarm"}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		m, err := Check(bytes.NewReader(data), "cortex.yaml", opts)
		if err != nil {
			b.Fatal(err)
		}
		m.Resolve(daemon)
	}
}

// BenchmarkSyntaxError measures locating a syntax error at the end of a
// large (~5000 line) manifest, the slowest path of Parse.
func BenchmarkSyntaxError(b *testing.B) {
	var buf bytes.Buffer
	buf.WriteString("version: \"1\"\nproject: p\nagents:\n")
	for range 1000 {
		buf.WriteString("  - name: a\n    entrypoint: a:main\n    capabilities:\n      - network.access: [api.example.com]\n      - bus.publish: [x]\n")
	}
	buf.WriteString("   broken: [\n")
	data := buf.Bytes()
	for b.Loop() {
		_, err := Parse(bytes.NewReader(data), "cortex.yaml")
		if err == nil {
			b.Fatal("no error")
		}
	}
}
