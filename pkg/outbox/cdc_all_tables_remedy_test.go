package outbox

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestCDCPublicationMadeForAllTablesRemedyPublishesEveryEvent has an
// operator make a running change-data-capture relay's publication FOR
// ALL TABLES (dropped and created again in one transaction); an
// application transaction then writes an event. The relay stops with
// the remedy for such a publication: drop it and create it again for the
// table alone, in one transaction.
//
// The correct outcome: after that remedy every event is published
// exactly once, or the relay stops with an error whose remedy leads
// there. What happens: the table watch, which looks for the table among
// the publication's tables (a FOR ALL TABLES publication lists none),
// reports the table taken out of the publication: it says that rows
// inserted since are never streamed and are not in the topics, though
// the drain publishes them, and gives a remedy (ALTER PUBLICATION ...
// ADD TABLE) that PostgreSQL refuses for such a publication.
func TestCDCPublicationMadeForAllTablesRemedyPublishesEveryEvent(t *testing.T) {
	e := newCDCEnv(t)
	ctx := testCtx(t)
	cfg := e.config("a1", 0)
	e.cdcSetupWith(cfg)
	_, pub := e.cdcNames(cfg)
	first := e.placeOrdersInTxns(1, 1)
	r, err := NewCDCRelay(e.dsn, cfg)
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	e.waitSeen(first, 30*time.Second)
	if _, err := e.pool.Exec(ctx, `BEGIN; DROP PUBLICATION `+pub+`; CREATE PUBLICATION `+pub+` FOR ALL TABLES WITH (publish = 'insert'); COMMIT`); err != nil {
		t.Fatal(err)
	}
	during := e.placeOrders(1)
	runErr := <-done
	t.Logf("relay stopped: %v", runErr)
	if runErr == nil {
		t.Fatal("relay ran on under a FOR ALL TABLES publication")
	}
	if strings.Contains(runErr.Error(), "was taken out of publication") {
		// The error of a table taken out: rows inserted since are never
		// streamed, their UUIDs are not in the topics; publish them some
		// other way and put the table back (ALTER PUBLICATION ... ADD
		// TABLE).
		if n := e.readSeen()[during[0]]; n != 0 {
			t.Errorf("event %d, committed after the change, is in the topic %d times; the relay's error says rows inserted since "+
				"are never streamed and their event UUIDs are not in the topics, to be published some other way", during[0], n)
		}
		if _, err := e.pool.Exec(ctx, `ALTER PUBLICATION `+pub+` ADD TABLE weir_outbox`); err != nil {
			t.Fatalf("the error's remedy (ALTER PUBLICATION ... ADD TABLE) fails: %v; the error was: %v", err, runErr)
		}
	} else {
		i := strings.Index(runErr.Error(), "(BEGIN; ")
		if i < 0 {
			t.Fatalf("relay stopped with %v; want the remedy for a FOR ALL TABLES publication", runErr)
		}
		remedy := runErr.Error()[i+1:]
		remedy = remedy[:strings.Index(remedy, "COMMIT")+len("COMMIT")]
		if _, err := e.pool.Exec(ctx, remedy); err != nil {
			t.Fatalf("remedy %q: %v", remedy, err)
		}
	}
	later := e.placeOrdersInTxns(1, 1)
	if err := e.publishedOrRefusedSoft(e.cdcRelay("a1"), append(during, later...), 20*time.Second); err != nil {
		t.Fatalf("after the remedy: %v", err)
	}
	time.Sleep(time.Second)
	seen := e.readSeen()
	for _, id := range append(append(first, during...), later...) {
		if seen[id] != 1 {
			t.Errorf("event %d published %d times; want once", id, seen[id])
		}
	}
}
