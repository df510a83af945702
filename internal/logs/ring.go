package logs

// ring holds an agent's most recent records for followers, bounded by
// count and by encoded size. Records in it have consecutive Seqs.
type ring struct {
	maxRecs, maxBytes int

	recs  []Record
	sizes []int
	head  int
	n     int
	bytes int
}

const (
	defaultRingRecords = 1024
	defaultRingBytes   = 4 << 20
)

func (r *ring) push(rec Record, size int) {
	if r.recs == nil {
		r.recs = make([]Record, r.maxRecs)
		r.sizes = make([]int, r.maxRecs)
	}
	for r.n > 0 && (r.n == len(r.recs) || r.bytes+size > r.maxBytes) {
		r.pop()
	}
	i := (r.head + r.n) % len(r.recs)
	r.recs[i], r.sizes[i] = rec, size
	r.n++
	r.bytes += size
}

func (r *ring) pop() {
	r.recs[r.head] = Record{}
	r.bytes -= r.sizes[r.head]
	r.head = (r.head + 1) % len(r.recs)
	r.n--
}

// first returns the oldest Seq held.
func (r *ring) first() (uint64, bool) {
	if r.n == 0 {
		return 0, false
	}
	return r.recs[r.head].Seq, true
}

// after copies up to max records with Seq > seq, oldest first.
func (r *ring) after(seq uint64, max int) []Record {
	if r.n == 0 {
		return nil
	}
	skip := 0
	if first := r.recs[r.head].Seq; seq >= first {
		skip = int(min(seq-first+1, uint64(r.n)))
	}
	cnt := min(r.n-skip, max)
	if cnt <= 0 {
		return nil
	}
	out := make([]Record, cnt)
	for k := range out {
		out[k] = r.recs[(r.head+skip+k)%len(r.recs)]
	}
	return out
}
