package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"text/tabwriter"

	"github.com/cortexrt/cortex/internal/api"
	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/spf13/cobra"
)

func busCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bus",
		Short: "The message bus: publish, subscribe and counters from the host",
		Long: `Agents publish and subscribe through the Python and Node SDKs (see sdk/ and
docs/bus-protocol.md). These commands reach a project's channels from the host.`,
	}
	cmd.AddCommand(busPublishCmd(e), busSubscribeCmd(e), busStatsCmd(e))
	return cmd
}

func channelPath(project, channel string) string {
	return "/bus/" + url.PathEscape(project) + "/" + url.PathEscape(channel)
}

func busPublishCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "publish PROJECT CHANNEL JSON",
		Short: "Publish a JSON object to a project's channel",
		Args:  exactArgs(3, "PROJECT, CHANNEL and a JSON object"),
		RunE: func(c *cobra.Command, args []string) error {
			var obj map[string]any
			if err := json.Unmarshal([]byte(args[2]), &obj); err != nil {
				return errdefs.WithHint(errdefs.New(errdefs.InvalidArgument, "payload is not a JSON object: %v", err), `write e.g. '{"status": "done"}'`)
			}
			cl, err := e.connect(c.Context(), false)
			if err != nil {
				return err
			}
			var res api.BusPublishResult
			if err := cl.Do(c.Context(), http.MethodPost, channelPath(args[0], args[1]), nil, bytes.NewReader([]byte(args[2])), &res); err != nil {
				return err
			}
			fmt.Fprintln(e.stdout, res.ID)
			return nil
		},
	}
}

func busSubscribeCmd(e *env) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "subscribe [--json] PROJECT CHANNEL",
		Short: "Print messages of a project's channel as they arrive (Ctrl-C to stop)",
		Args:  exactArgs(2, "PROJECT and CHANNEL"),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := e.connect(c.Context(), false)
			if err != nil {
				return err
			}
			resp, err := cl.Stream(c.Context(), http.MethodGet, channelPath(args[0], args[1]), nil)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			err = api.ReadSSE(resp.Body, func(event string, data []byte) error {
				if event != "message" {
					return nil
				}
				if asJSON {
					_, err := fmt.Fprintln(e.stdout, string(data))
					return err
				}
				var m api.BusMessage
				if err := json.Unmarshal(data, &m); err != nil {
					return err
				}
				from := m.From
				if from == "" {
					from = "(operator)"
				}
				_, err := fmt.Fprintf(e.stdout, "%s %s %s\n", m.Time.Format("15:04:05.000"), from, m.Payload)
				return err
			})
			if c.Context().Err() != nil {
				return nil
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print each message as JSON (with id, sender, time)")
	return cmd
}

func busStatsCmd(e *env) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "stats [--json]",
		Short: "Per channel: published, delivered, dropped, subscribers; broker bridges",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			var rep api.BusStats
			if printed, err := e.fetchJSON(c.Context(), http.MethodGet, "/bus/stats", nil, nil, asJSON, &rep); printed || err != nil {
				return err
			}
			return writeBusStats(e.stdout, rep)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// writeBusStats writes rep as cortex bus stats shows it: one row per
// channel, then one per broker bridge when there are any.
func writeBusStats(w io.Writer, rep api.BusStats) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PROJECT\tCHANNEL\tDURABLE\tPUBLISHED\tDELIVERED\tDROPPED\tSUBSCRIBERS")
	for _, c := range rep.Channels {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\n", c.Project, c.Channel, yesNo(c.Durable), c.Published, c.Delivered, c.Dropped, c.Subscribers)
	}
	if len(rep.Brokers) > 0 {
		fmt.Fprintln(tw)
		fmt.Fprintln(tw, "PROJECT\tBROKER\tCONNECTED\tFORWARDED\tRECEIVED\tDROPPED\tERRORS")
		for _, b := range rep.Brokers {
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
