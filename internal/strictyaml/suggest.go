package strictyaml

import (
	"fmt"
	"strings"
)

// Suggest returns the candidate closest to word by edit distance
// (insertions, deletions, substitutions and swaps of neighbours, ignoring
// case), or "" when none is close or two are equally close. Close means at
// most 2 edits and fewer edits than word has characters, or at most a third
// of word's length. When nothing is close, a single candidate that word is a
// prefix of ("network" for "network.access") is suggested.
func Suggest(word string, candidates []string) string {
	lw := strings.ToLower(word)
	n := len([]rune(lw))
	best, bestD, tie := "", -1, false
	for _, c := range candidates {
		lc := strings.ToLower(c)
		if diff := n - len([]rune(lc)); diff > 2 && diff*3 > n || -diff > 2 && -diff*3 > n {
			continue // the distance is at least the difference in length
		}
		d := distance(lw, lc)
		if !(d <= 2 && d < n) && d*3 > n {
			continue
		}
		switch {
		case bestD < 0 || d < bestD:
			best, bestD, tie = c, d, false
		case d == bestD && c != best:
			tie = true
		}
	}
	if bestD >= 0 {
		if tie {
			return ""
		}
		return best
	}
	if n < 3 {
		return ""
	}
	var prefixed []string
	for _, c := range candidates {
		if strings.HasPrefix(strings.ToLower(c), lw) {
			prefixed = append(prefixed, c)
		}
	}
	if len(prefixed) == 1 {
		return prefixed[0]
	}
	return ""
}

// DidYouMean returns `did you mean "x"?` for Suggest's answer, or else
// otherwise (typically "use one of a, b, c").
func DidYouMean(word string, candidates []string, otherwise string) string {
	if s := Suggest(word, candidates); s != "" {
		return fmt.Sprintf("did you mean %q?", s)
	}
	return otherwise
}

// distance is the optimal string alignment distance between a and b.
func distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	if len(ra) > 256 || len(rb) > 256 {
		if a == b {
			return 0
		}
		return max(len(ra), len(rb))
	}
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}
