package reliability

import (
	"testing"

	"github.com/taskerhq/tasker/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }
