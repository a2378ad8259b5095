package ui

import (
	"io/fs"
	"strings"
	"testing"

	"github.com/contprof/contprof/internal/control/taskcontrol"
)

// Every task state has its style in the task lists, and every state a task
// ends in without finishing has its colour on the timeline (otherwise its
// mark takes the target's colour and reads as a finished task).
func TestEveryTaskStateHasAColour(t *testing.T) {
	css, err := fs.ReadFile(assets, "assets/app.css")
	if err != nil {
		t.Fatal(err)
	}
	js, err := fs.ReadFile(assets, "assets/app.js")
	if err != nil {
		t.Fatal(err)
	}
	_, colours, _ := strings.Cut(string(js), "const STATE_COLOURS = {")
	colours, _, _ = strings.Cut(colours, "}")
	for _, s := range []taskcontrol.State{taskcontrol.StatePending, taskcontrol.StateRunning, taskcontrol.StateFinished,
		taskcontrol.StateFailed, taskcontrol.StateCancelled, taskcontrol.StateInterrupted} {
		if !strings.Contains(string(css), ".state-"+string(s)+" {") {
			t.Errorf("app.css has no .state-%s rule", s)
		}
		if s.Ended() && s != taskcontrol.StateFinished && !strings.Contains(colours, string(s)+":") {
			t.Errorf("app.js STATE_COLOURS has no colour for %s: {%s}", s, colours)
		}
	}
}
