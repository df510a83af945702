package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"

	"github.com/cortexrt/cortex/internal/api"
	"github.com/spf13/cobra"
)

func llmCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "llm",
		Short: "The LLM gateway: models, usage, a quick chat from the host",
		Long: `Agents with llm.access reach the daemon's LLM gateway at http://llm.cortex.internal
(OpenAI- and Anthropic-compatible), with a per-agent token and no provider key. These
commands look at it from the host; see docs/llm.md.`,
	}
	cmd.AddCommand(llmModelsCmd(e), llmUsageCmd(e), llmChatCmd(e))
	return cmd
}

func llmModelsCmd(e *env) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "models [--json]",
		Short: "List the aliases and their provider/model targets",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			var rep api.LLMModels
			if printed, err := e.fetchJSON(c.Context(), http.MethodGet, "/llm/models", nil, nil, asJSON, &rep); printed || err != nil {
				return err
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 3, ' ', 0)
			fmt.Fprintln(tw, "ALIAS\tSTRATEGY\tCACHE\tTARGETS")
			for _, a := range rep.Aliases {
				var ts []string
				for _, t := range a.Targets {
					s := t.Provider + "/" + t.Model
					if t.CoolingDownUntil != nil {
						s += " (cooling down)"
					}
					ts = append(ts, s)
				}
				strategy := a.Strategy
				if strategy == "" {
					strategy = "ordered"
				}
				fmt.Fprintf(tw, "%s\t%s\t%v\t%s\n", a.Name, strategy, a.Cache, strings.Join(ts, ", "))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func llmUsageCmd(e *env) *cobra.Command {
	var asJSON bool
	var project, agent, since, until, group string
	cmd := &cobra.Command{
		Use:   "usage [--json] [--project P] [--agent A] [--since YYYY-MM-DD] [--group day,agent,model]",
		Short: "Requests, tokens and cost by agent, model and day",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			q := url.Values{}
			for k, v := range map[string]string{"project": project, "agent": agent, "since": since, "until": until, "group": group} {
				if v != "" {
					q.Set(k, v)
				}
			}
			var rep api.LLMUsageReport
			if printed, err := e.fetchJSON(c.Context(), http.MethodGet, "/llm/usage", q, nil, asJSON, &rep); printed || err != nil {
				return err
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 3, ' ', 0)
			fmt.Fprintln(tw, "DAY\tPROJECT\tAGENT\tMODEL\tREQUESTS\tERRORS\tCACHE HITS\tINPUT\tOUTPUT\tCOST")
			row := func(r api.LLMUsageRow) {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t$%.4f\n", dash(r.Day), dash(r.Project), dash(r.Agent), dash(r.Model),
					r.Requests, r.Errors, r.CacheHits, r.InputTokens, r.OutputTokens, r.CostUSD)
			}
			for _, r := range rep.Rows {
				row(r)
			}
			t := rep.Total
			t.Day = "TOTAL"
			row(t)
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().StringVar(&project, "project", "", "only this project")
	cmd.Flags().StringVar(&agent, "agent", "", "only this agent")
	cmd.Flags().StringVar(&since, "since", "", "first day (YYYY-MM-DD)")
	cmd.Flags().StringVar(&until, "until", "", "last day (YYYY-MM-DD)")
	cmd.Flags().StringVar(&group, "group", "", "dimensions to group by: day, project, agent, alias, provider, model")
	return cmd
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func llmChatCmd(e *env) *cobra.Command {
	var req api.LLMChatRequest
	var asJSON bool
	cmd := &cobra.Command{
		Use:   `chat ALIAS "prompt"`,
		Short: "Send one prompt through an alias, from the host",
		Args:  exactArgs(2, "ALIAS and a prompt"),
		RunE: func(c *cobra.Command, args []string) error {
			req.Alias, req.Prompt = args[0], args[1]
			body, _ := json.Marshal(req)
			var res api.LLMChatResult
			if printed, err := e.fetchJSON(c.Context(), http.MethodPost, "/llm/chat", nil, bytes.NewReader(body), asJSON, &res); printed || err != nil {
				return err
			}
			fmt.Fprintln(e.stdout, res.Text)
			fmt.Fprintf(e.stderr, "(%s via %s/%s, %s, %d in / %d out tokens, cache %s, gateway added %.1f ms)\n",
				res.Alias, res.Provider, res.Model, res.FinishReason, res.Usage.InputTokens, res.Usage.OutputTokens, res.Cache, res.AddedLatencyMs)
			return nil
		},
	}
	cmd.Flags().StringVar(&req.System, "system", "", "a system prompt")
	cmd.Flags().IntVar(&req.MaxTokens, "max-tokens", 0, "cap the answer's length")
	cmd.Flags().BoolVar(&req.NoCache, "no-cache", false, "bypass the response cache")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the whole result as JSON")
	return cmd
}
