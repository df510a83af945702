package cli

import (
	"github.com/schollz/progressbar/v3"
)

// bar is an optional terminal progress bar for long operations.
type bar struct {
	e     *env
	label string
	pb    *progressbar.ProgressBar
}

// progressThreshold: below this many bytes no bar is shown.
const progressThreshold = 8 << 20

func (e *env) progress(label string) *bar { return &bar{e: e, label: label} }

func (b *bar) update(done, total int64) {
	if total < progressThreshold || !b.e.tty(b.e.stderr) {
		return
	}
	if b.pb == nil {
		b.pb = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(b.e.stderr),
			progressbar.OptionSetDescription(b.label),
			progressbar.OptionShowBytes(true),
			progressbar.OptionClearOnFinish(),
			progressbar.OptionThrottle(100_000_000))
	}
	_ = b.pb.Set64(done)
}

func (b *bar) done() {
	if b.pb != nil {
		_ = b.pb.Finish()
	}
}
