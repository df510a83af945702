package audit

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Source is what Verify reads: the audit directory, or the same files
// fetched from a remote daemon.
type Source interface {
	// Segments names the segment files, in any order.
	Segments() ([]string, error)
	// Read returns a file of the directory (a segment, key.pub, key); an
	// error wrapping os.ErrNotExist when it is not there.
	Read(name string) ([]byte, error)
}

// Dir is a Source reading an audit directory.
type Dir string

// Segments implements Source.
func (d Dir) Segments() ([]string, error) {
	ents, err := os.ReadDir(string(d))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if segmentName.MatchString(e.Name()) {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// Read implements Source.
func (d Dir) Read(name string) ([]byte, error) {
	if strings.ContainsAny(name, "/\\") {
		return nil, fmt.Errorf("%q: not a file of the audit directory", name)
	}
	return os.ReadFile(filepath.Join(string(d), name))
}

var segmentName = regexp.MustCompile(`^segment-[0-9]{6,}\.jsonl$`)

// SegmentName is the file name of segment seq.
func SegmentName(seq int) string { return fmt.Sprintf("segment-%06d.jsonl", seq) }

func segmentSeq(name string) int {
	n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(name, "segment-"), ".jsonl"))
	return n
}

// Problem is the first thing that does not verify: which file, line and
// entry.
type Problem struct {
	File  string
	Line  int
	Index uint64
	// HasIndex: Index names the entry expected at Line.
	HasIndex bool
	Msg      string
}

func (p *Problem) Error() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		b.WriteString(":" + strconv.Itoa(p.Line))
	}
	b.WriteString(": ")
	if p.HasIndex {
		b.WriteString("entry " + strconv.FormatUint(p.Index, 10) + ": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// VerifyOptions are Verify's.
type VerifyOptions struct {
	// Key is the verifier key to check checkpoints with; "" reads the
	// directory's key.pub (and checks it against key when readable).
	// Keep the key with kept checkpoints: someone able to rewrite the
	// directory can replace key.pub too.
	Key string
	// Kept are signed checkpoints kept elsewhere (cortex audit
	// checkpoint); each must be a head of this log: a log shorter than one
	// lost its newest entries, one with another root was rewritten.
	Kept [][]byte
}

// Result describes a log that verified.
type Result struct {
	Segments    int
	Entries     uint64
	Checkpoints int
	Root        []byte
	// Latest is the newest signed checkpoint in the log.
	Latest *Checkpoint
	// Unsigned counts the entries after Latest's own entry: they verify
	// against the heads they recorded, but no signature covers them yet.
	Unsigned uint64
	// Kept are the kept checkpoints, verified.
	Kept []Checkpoint
}

// Verify checks the whole log: every segment from the first, every
// entry's canonical encoding, index and recorded tree head, every
// signed checkpoint and segment head, and each kept checkpoint. It
// returns a *Problem naming the first entry that fails.
func Verify(src Source, opts VerifyOptions) (Result, error) {
	var res Result
	vkey := opts.Key
	if vkey == "" {
		vk, err := src.Read(VerifierFile)
		if err != nil {
			return res, &Problem{File: VerifierFile, Msg: fmt.Sprintf("cannot read the verifier key: %v", err)}
		}
		if sk, err := src.Read(SignerFile); err == nil {
			if err := keysMatch(sk, vk); err != nil {
				return res, &Problem{File: SignerFile, Msg: err.Error()}
			}
		} else if !errors.Is(err, os.ErrNotExist) {
			return res, &Problem{File: SignerFile, Msg: err.Error()}
		}
		vkey = string(vk)
	}
	var kept []Checkpoint
	want := map[uint64][]int{}
	for i, k := range opts.Kept {
		cp, err := OpenCheckpoint(k, vkey)
		if err != nil {
			return res, &Problem{File: fmt.Sprintf("kept checkpoint %d", i+1), Msg: err.Error()}
		}
		kept = append(kept, cp)
		want[cp.Size] = append(want[cp.Size], i)
	}
	matched := make([]bool, len(kept))
	names, err := src.Segments()
	if err != nil {
		return res, err
	}
	sort.Slice(names, func(i, j int) bool { return segmentSeq(names[i]) < segmentSeq(names[j]) })
	if len(names) == 0 {
		return res, &Problem{File: "audit", Msg: "no segment files"}
	}
	t := newTree()
	checkKept := func() error {
		for _, i := range want[t.size()] {
			if !bytes.Equal(kept[i].Root, t.root()) {
				return fmt.Errorf("the log's first %d entries do not match kept checkpoint %d (same size, another root): entries were changed or removed and the log rewritten", t.size(), i+1)
			}
			matched[i] = true
		}
		return nil
	}
	if err := checkKept(); err != nil {
		return res, &Problem{File: names[0], Msg: err.Error()}
	}
	for n, name := range names {
		if seq := segmentSeq(name); seq != n+1 {
			return res, &Problem{File: name, Msg: fmt.Sprintf("segment %d follows segment %d: segment %d is missing", seq, n, n+1)}
		}
		data, err := src.Read(name)
		if err != nil {
			return res, &Problem{File: name, Msg: err.Error()}
		}
		v := verifier{file: name, seq: n + 1, vkey: vkey, t: t, res: &res, after: checkKept}
		if err := v.segment(data); err != nil {
			return res, err
		}
		res.Segments++
	}
	for i, m := range matched {
		if !m {
			return res, &Problem{File: names[len(names)-1], Msg: fmt.Sprintf("the log has %d entries but kept checkpoint %d has %d: the newest %d entries were removed",
				t.size(), i+1, kept[i].Size, kept[i].Size-t.size())}
		}
	}
	res.Entries = t.size()
	res.Root = t.root()
	res.Kept = kept
	if res.Latest != nil {
		res.Unsigned = res.Entries - res.Latest.Size - 1
	} else {
		res.Unsigned = res.Entries
	}
	return res, nil
}

// verifier checks one segment, continuing the tree t.
type verifier struct {
	file  string
	seq   int
	vkey  string
	t     *tree
	res   *Result
	after func() error
}

func (v *verifier) segment(data []byte) error {
	if len(data) == 0 {
		return &Problem{File: v.file, Line: 1, Msg: "the segment is empty (it must begin with its segment head)"}
	}
	lines := bytes.Split(data, []byte("\n"))
	torn := len(lines[len(lines)-1]) > 0
	if !torn {
		lines = lines[:len(lines)-1]
	}
	for i, l := range lines {
		p := &Problem{File: v.file, Line: i + 1, Index: v.t.size(), HasIndex: true}
		if torn && i == len(lines)-1 {
			p.Msg = "the last entry is incomplete (no newline): it was cut short"
			return p
		}
		if err := v.entry(i, l); err != nil {
			p.Msg = err.Error()
			return p
		}
		if err := v.after(); err != nil {
			p.Msg = err.Error()
			return p
		}
	}
	return nil
}

func (v *verifier) entry(i int, l []byte) error {
	e, leaf, err := parseLine(l)
	if err != nil {
		return err
	}
	if e.Index != v.t.size() {
		if e.Index > v.t.size() {
			return fmt.Errorf("found entry %d here: entries %d to %d are missing", e.Index, v.t.size(), e.Index-1)
		}
		return fmt.Errorf("found entry %d here again (out of order or repeated)", e.Index)
	}
	switch {
	case i == 0 && e.Kind != KindSegment:
		return fmt.Errorf("a segment must begin with its segment head, found a %q entry", e.Kind)
	case i != 0 && e.Kind == KindSegment:
		return fmt.Errorf("a segment head in the middle of a segment")
	}
	switch e.Kind {
	case KindSegment:
		if e.Segment == nil || e.Segment.Seq != v.seq {
			return fmt.Errorf("segment head does not name segment %d", v.seq)
		}
		if !sameHashes(e.Segment.Range, v.t.hashes()) {
			return fmt.Errorf("segment head's tree does not continue the previous segment's")
		}
		if err := v.checkpoint(e); err != nil {
			return err
		}
	case KindCheckpoint:
		if err := v.checkpoint(e); err != nil {
			return err
		}
	case KindAPI:
		if e.API == nil {
			return fmt.Errorf("api entry without its record")
		}
	case KindEvent:
		if e.Event == nil {
			return fmt.Errorf("event entry without its record")
		}
	case KindNotice:
	default:
		return fmt.Errorf("unknown entry kind %q", e.Kind)
	}
	if root := v.t.append(leaf); !bytes.Equal(root, e.Root) {
		return fmt.Errorf("its content does not hash to the tree head recorded with it: the entry was changed")
	}
	return nil
}

func (v *verifier) checkpoint(e Entry) error {
	cp, err := OpenCheckpoint([]byte(e.Checkpoint), v.vkey)
	if err != nil {
		return err
	}
	if cp.Size != v.t.size() || !bytes.Equal(cp.Root, v.t.root()) {
		return fmt.Errorf("signed checkpoint (size %d) does not match the entries before it (size %d): entries before it were changed", cp.Size, v.t.size())
	}
	v.res.Checkpoints++
	v.res.Latest = &cp
	return nil
}

func sameHashes(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}
