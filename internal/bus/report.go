package bus

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// WriteTable writes the report as `cortex bus stats` shows it: one row per
// channel, then one per broker bridge when there are any.
func (r StatsReport) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PROJECT\tCHANNEL\tDURABLE\tPUBLISHED\tDELIVERED\tDROPPED\tSUBSCRIBERS")
	for _, c := range r.Channels {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\n", c.Project, c.Channel, yesNo(c.Durable), c.Published, c.Delivered, c.Dropped, c.Subscribers)
	}
	if len(r.Brokers) > 0 {
		fmt.Fprintln(tw)
		fmt.Fprintln(tw, "PROJECT\tBROKER\tCONNECTED\tFORWARDED\tRECEIVED\tDROPPED\tERRORS")
		for _, b := range r.Brokers {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\n", b.Project, b.URL, yesNo(b.Connected), b.Forwarded, b.Received, b.Dropped, b.Errors)
		}
	}
	return tw.Flush()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
