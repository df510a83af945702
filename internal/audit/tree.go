package audit

import (
	"github.com/transparency-dev/merkle/compact"
)

var rangeFactory = &compact.RangeFactory{Hash: hasher.HashChildren}

// tree is the log's Merkle tree as a compact range: the roots of the
// perfect subtrees covering entries [0, size), enough to append and to
// compute the head (transparency-dev/merkle's compact package, as
// tessera keeps it).
type tree struct {
	rng *compact.Range
}

func newTree() *tree { return &tree{rng: rangeFactory.NewEmptyRange(0)} }

// treeFrom rebuilds a tree of size entries from its compact range.
func treeFrom(size uint64, hashes [][]byte) (*tree, error) {
	r, err := rangeFactory.NewRange(0, size, hashes)
	if err != nil {
		return nil, err
	}
	return &tree{rng: r}, nil
}

func (t *tree) size() uint64 { return t.rng.End() }

// append adds a leaf (its data, not yet hashed) and returns the new head.
func (t *tree) append(leaf []byte) []byte {
	_ = t.rng.Append(hasher.HashLeaf(leaf), nil)
	return t.root()
}

// root is the tree head (RFC 6962; the hash of the empty string for no
// entries).
func (t *tree) root() []byte {
	if t.rng.End() == 0 {
		return hasher.EmptyRoot()
	}
	r, _ := t.rng.GetRootHash(nil)
	return r
}

// hashes copies the compact range.
func (t *tree) hashes() [][]byte {
	h := t.rng.Hashes()
	out := make([][]byte, len(h))
	for i := range h {
		out[i] = append([]byte(nil), h[i]...)
	}
	return out
}

func (t *tree) clone() *tree {
	c, _ := treeFrom(t.size(), t.hashes())
	return c
}
