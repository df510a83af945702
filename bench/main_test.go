package bench

import (
	"os"
	"testing"

	"github.com/cortexrt/cortex/internal/daemon/daemontest"
)

func TestMain(m *testing.M) { os.Exit(daemontest.Main(m)) }
