package sandbox

// UsernsHoldArg is the argv[1] that makes cortexd run as the userns
// holder: a process that only keeps a user namespace (the id map of an
// idmapped mount) alive until its stdin closes (HoldUserns).
const UsernsHoldArg = "userns-hold"

// ctrlType is the type of a control message. The daemon (Start) and the
// init (Init) talk over the init's control pipe in JSON lines, ctrlMsg:
//
//	daemon -> init   spec     the sandbox to build (Spec)
//	daemon -> init   go       the init is in its cgroup: run the agent
//	init -> daemon   log      a log line of the init (Level, Msg)
//	init -> daemon   started  the agent runs, as Pid
//	init -> daemon   error    Step failed (Error)
type ctrlType string

const (
	ctrlSpec    ctrlType = "spec"
	ctrlGo      ctrlType = "go"
	ctrlLog     ctrlType = "log"
	ctrlStarted ctrlType = "started"
	ctrlError   ctrlType = "error"
)

// ctrlGoLine is the encoded "go" message.
var ctrlGoLine = []byte(`{"type":"` + ctrlGo + `"}` + "\n")
