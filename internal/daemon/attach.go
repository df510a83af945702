package daemon

import "github.com/cortexrt/cortex/internal/supervisor"

// attachers are the subsystems added to every agent's sandbox, in order.
func (d *Daemon) attachers() []supervisor.Attacher {
	return nil
}

// installSDK writes the agent SDKs under shareDir/sdk.
func installSDK(shareDir string) error { return nil }
