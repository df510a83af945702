package cli

import (
	"context"
	"fmt"

	"github.com/cortexrt/cortex/internal/api"
)

// eachAgent runs fn for every reference, continuing past errors, and
// returns the first error (the rest are printed).
func (e *env) eachAgent(ctx context.Context, refs []string, fn func(*api.Client, api.AgentRef) error) error {
	c, err := e.connect(ctx, false)
	if err != nil {
		return err
	}
	var first error
	for _, r := range refs {
		ref, err := c.Resolve(ctx, r)
		if err == nil {
			err = fn(c, ref)
		}
		if err != nil {
			if first == nil {
				first = err
			} else {
				printError(e.stderr, "cortex", err)
			}
			continue
		}
	}
	return first
}

// eachProject runs fn for every project in order, printing each name once
// fn succeeded, and stops at the first error (cortex stop, cortex rm).
func (e *env) eachProject(ctx context.Context, projects []string, fn func(*api.Client, string) error) error {
	c, err := e.connect(ctx, false)
	if err != nil {
		return err
	}
	for _, p := range projects {
		if err := fn(c, p); err != nil {
			return err
		}
		fmt.Fprintln(e.stdout, p)
	}
	return nil
}
