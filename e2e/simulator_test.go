package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// simFigures are the figures of one row of the simulator's tally table.
type simFigures struct {
	Sent         int `json:"sent"`
	Acked        int `json:"acknowledged"`
	Delivered    int `json:"delivered"`
	Lost         int `json:"lost"`
	Duplicated   int `json:"duplicated"`
	RCViolations int `json:"readCommittedViolations"`
}

// simRun is what a finished session showed.
type simRun struct {
	page, checker       simFigures
	drawnDup, drawnLost int
	verdict             string
}

// runSimulator fills in the settings, starts a session, clicks fault once
// records flow, lets more records flow, stops, and reads the page once
// the session is judged. fields maps element ids to values ("on"/"off"
// for checkboxes).
func runSimulator(t *testing.T, b *consoleBrowser, fields map[string]string, fault, shot string) simRun {
	t.Helper()
	return runSimulatorUntil(t, b, fields, fault, shot, nil)
}

// runSimulatorUntil is runSimulator that, after the fault, also waits for
// recovered (if not nil) and for more records to flow after it before
// stopping.
func runSimulatorUntil(t *testing.T, b *consoleBrowser, fields map[string]string, fault, shot string, recovered func() bool) simRun {
	t.Helper()
	b.open("/simulator")
	var js strings.Builder
	for id, v := range fields {
		switch v {
		case "on", "off":
			fmt.Fprintf(&js, "document.getElementById(%q).checked = %v;", id, v == "on")
		default:
			fmt.Fprintf(&js, "document.getElementById(%q).value = %q;", id, v)
		}
	}
	js.WriteString("true")
	eval[bool](b, js.String())
	b.do(chromedp.Click(chromedp.ID("start")))
	sent := func() int {
		n, _ := strconv.Atoi(eval[string](b, `document.querySelector('#page-tally .sent').textContent`))
		return n
	}
	waitFor(t, b, "records flowing", func() bool { return bodyData(b, "state") == "running" && sent() >= 40 })
	at := sent()
	b.do(chromedp.Click(chromedp.CSS(`button[data-fault="` + fault + `"]`)))
	waitFor(t, b, "records flowing after the fault", func() bool { return sent() >= at+60 })
	if recovered != nil {
		waitFor(t, b, "the session recovered from the fault", recovered)
		at = sent()
		waitFor(t, b, "records flowing after the recovery", func() bool { return sent() >= at+40 })
	}
	b.shot(shot + "-running")
	b.do(chromedp.Click(chromedp.ID("stop")))
	waitFor(t, b, "the session judged", func() bool {
		s := bodyData(b, "state")
		if s == "failed" {
			b.shot(shot + "-failed")
			t.Fatalf("session failed: %s; events:\n%s", eval[string](b, `document.getElementById('state').textContent`),
				eval[string](b, `[...document.querySelectorAll('#events li')].map(li => li.textContent).join('\n')`))
		}
		return s == "done"
	})
	b.shot(shot)
	row := func(id string) simFigures {
		cells := eval[map[string]string](b, `Object.fromEntries([...document.querySelectorAll('#`+id+` td')].map(td => [td.className.replace('n ', ''), td.textContent]))`)
		num := func(k string) int {
			n, err := strconv.Atoi(cells[k])
			if err != nil {
				t.Fatalf("%s %s shows %q", id, k, cells[k])
			}
			return n
		}
		return simFigures{Sent: num("sent"), Acked: num("acknowledged"), Delivered: num("delivered"), Lost: num("lost"), Duplicated: num("duplicated"), RCViolations: num("rc")}
	}
	return simRun{
		page: row("page-tally"), checker: row("checker-tally"),
		drawnDup:  eval[int](b, `document.querySelectorAll('#grid .f-D').length`),
		drawnLost: eval[int](b, `document.querySelectorAll('#grid .f-l').length`),
		verdict:   eval[string](b, `document.getElementById('verdict').textContent`),
	}
}

// bodyData reads a data attribute of the page's body.
func bodyData(b *consoleBrowser, what string) string {
	return eval[string](b, `document.body.dataset.`+what+` || ''`)
}

// waitFor polls cond every 200 ms for up to 60 s.
func waitFor(t *testing.T, b *consoleBrowser, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if cond() {
			return
		}
	}
	b.shot("timeout")
	t.Fatalf("timed out waiting for %s", what)
}

// checkerFigures reads the lab checker's figures over the session's logs
// from the JSON endpoint, and how many produce responses the session's
// broker dropped or cut.
func checkerFigures(t *testing.T, base string) (simFigures, int) {
	t.Helper()
	resp, err := http.Get(base + "/simulator/state")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st struct {
		State string `json:"state"`
		Final *struct {
			Checker simFigures `json:"checker"`
			Hit     int        `json:"produceResponsesHit"`
		} `json:"final"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if st.Final == nil {
		t.Fatalf("state %s has no checker figures", st.State)
	}
	return st.Final.Checker, st.Final.Hit
}

// assertPageIsChecker checks that every figure the page shows, in both
// rows, equals the lab checker's over the session's logs.
func assertPageIsChecker(t *testing.T, r simRun, checker simFigures) {
	t.Helper()
	if r.page != checker || r.checker != checker {
		t.Errorf("page shows %+v (checker row %+v); the lab checker over the logs counts %+v", r.page, r.checker, checker)
	}
	// A record received three times is one drawn and two counted.
	if r.drawnDup > r.page.Duplicated || (r.drawnDup > 0) != (r.page.Duplicated > 0) {
		t.Errorf("grid draws %d duplicated records, tally counts %d receptions beyond the first", r.drawnDup, r.page.Duplicated)
	}
	if r.drawnLost != r.page.Lost {
		t.Errorf("grid draws %d lost records, tally counts %d", r.drawnLost, r.page.Lost)
	}
}

// The delivery simulator on weir serve's admin listener, clicked in real
// Chromium, drives real processes: a lost acknowledgement makes an acks=1
// producer without idempotence write a record twice, drawn and counted
// as a duplicate; the idempotent producer under the same click writes
// none; every figure equals the lab checker's over the session's logs;
// and the page writes nothing to the browser console and asks no other
// host for anything.
func TestSimulatorShowsLostAcksAsTheLabCheckerCountsThem(t *testing.T) {
	_, admin := startConsoleBroker(t)
	b := newConsoleBrowser(t, admin)
	base := "http://" + admin

	t.Run("acks=1 without idempotence duplicates after a dropped acknowledgement", func(t *testing.T) {
		r := runSimulator(t, b, map[string]string{"acks": "1", "retries": "on", "idempotence": "off", "transactions": "off",
			"maxInFlight": "1", "commit": "after", "readCommitted": "off", "dedup": "off", "seed": "11"}, "drop-ack", "simulator-acks1-drop-ack")
		if r.page.Duplicated < 1 || r.drawnDup < 1 {
			t.Errorf("after a dropped acknowledgement the page counts %d duplicates and draws %d, want at least 1", r.page.Duplicated, r.drawnDup)
		}
		checker, hit := checkerFigures(t, base)
		assertPageIsChecker(t, r, checker)
		if hit != 1 {
			t.Errorf("the broker dropped %d produce responses, want the 1 clicked", hit)
		}
	})
	t.Run("the idempotent producer writes no duplicate after a dropped acknowledgement", func(t *testing.T) {
		r := runSimulator(t, b, map[string]string{"acks": "all", "retries": "on", "idempotence": "on", "transactions": "off",
			"maxInFlight": "5", "commit": "after", "readCommitted": "on", "dedup": "on", "seed": "11"}, "drop-ack", "simulator-idempotent-drop-ack")
		if r.page.Duplicated != 0 || r.drawnDup != 0 || r.page.Lost != 0 {
			t.Errorf("idempotent producer and dedup consumer: page counts %d duplicates (%d drawn) and %d lost, want none", r.page.Duplicated, r.drawnDup, r.page.Lost)
		}
		if !strings.HasPrefix(r.verdict, "held: exactly-once") {
			t.Errorf("verdict %q, want exactly-once held", r.verdict)
		}
		checker, hit := checkerFigures(t, base)
		assertPageIsChecker(t, r, checker)
		if hit != 1 {
			t.Errorf("the broker dropped %d produce responses, want the 1 clicked: no duplicate proves nothing without it", hit)
		}
	})
	b.assertClean()
}

// `weir lab --ui` serves the simulator without a broker of its own
// running; a session starts one, and killing it while an acks=0 producer
// writes loses records the producer counted as sent, drawn and counted
// as lost, as the lab checker counts them.
func TestLabUIShowsAcks0LossWhenTheBrokerIsKilled(t *testing.T) {
	addr := startLabUI(t)
	b := newConsoleBrowser(t, addr)
	r := runSimulator(t, b, map[string]string{"acks": "0", "retries": "on", "idempotence": "off", "transactions": "off",
		"maxInFlight": "1", "commit": "before", "readCommitted": "off", "dedup": "off", "seed": "5"}, "kill-broker", "simulator-acks0-kill-broker")
	if r.page.Lost < 1 || r.drawnLost < 1 {
		t.Errorf("acks=0 with the broker killed: page counts %d lost and draws %d, want at least 1", r.page.Lost, r.drawnLost)
	}
	checker, _ := checkerFigures(t, "http://"+addr)
	assertPageIsChecker(t, r, checker)
	b.assertClean()
}

// startLabUI runs `weir lab --ui` with extra arguments on a test port
// until the test ends, and returns its address once it serves.
func startLabUI(t *testing.T, extra ...string) string {
	t.Helper()
	addr := "127.0.0.1:" + strconv.Itoa(freePortRange(t, 1))
	cmd := exec.Command(weirBin, append([]string{"lab", "--ui", "--ui-listen", addr}, extra...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = &testWriter{t: t}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.Contains(line, "simulator serving on http://"+addr+"/simulator") {
		t.Fatalf("weir lab --ui printed %q (%v)", line, err)
	}
	return addr
}
