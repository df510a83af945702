package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"text/tabwriter"
	"time"

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
			var res struct {
				ID string `json:"id"`
			}
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
				var m busMessage
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
			var rep busStats
			if printed, err := e.fetchJSON(c.Context(), http.MethodGet, "/bus/stats", nil, nil, asJSON, &rep); printed || err != nil {
				return err
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 3, ' ', 0)
			fmt.Fprintln(tw, "PROJECT\tCHANNEL\tDURABLE\tPUBLISHED\tDELIVERED\tDROPPED\tSUBSCRIBERS")
			for _, ch := range rep.Channels {
				fmt.Fprintf(tw, "%s\t%s\t%v\t%d\t%d\t%d\t%d\n", ch.Project, ch.Channel, ch.Durable, ch.Published, ch.Delivered, ch.Dropped, ch.Subscribers)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			for _, b := range rep.Brokers {
				fmt.Fprintf(e.stdout, "broker: %s\n", b)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// Wire forms of the bus API (internal/bus documents them); the CLI keeps
// its own copies so it does not link the bus server.
type busMessage struct {
	ID      string          `json:"id"`
	From    string          `json:"from"`
	Time    time.Time       `json:"time"`
	Payload json.RawMessage `json:"payload"`
}

type busStats struct {
	Node     string `json:"node"`
	Channels []struct {
		Project     string `json:"project"`
		Channel     string `json:"channel"`
		Durable     bool   `json:"durable"`
		Published   uint64 `json:"published"`
		Delivered   uint64 `json:"delivered"`
		Dropped     uint64 `json:"dropped"`
		Subscribers int    `json:"subscribers"`
	} `json:"channels"`
	Brokers []json.RawMessage `json:"brokers"`
}
