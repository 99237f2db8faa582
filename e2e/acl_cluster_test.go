package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/weir-broker/weir/internal/testsvc"
)

// A node decides with the cluster's ACLs, never with ones the cluster has
// since taken back: Kafka's broker serves no request until it has caught
// up with the metadata log (its authorizer refuses until then), so a node
// restarted after an ACL was removed never authorizes with the old one.
// Here app's READ and DELETE on topic victim, led by node 3, are removed
// while node 3 is down; from the moment node 3 listens again app asks it,
// and only it, for victim's metadata, its records and its deletion: each
// must be refused.
func TestRestartedNodeNeverAuthorizesWithACLsRemovedWhileItWasDown(t *testing.T) {
	dir := t.TempDir()
	f := newTLSFiles(t, t.TempDir())
	for i := 1; i <= 3; i++ {
		nodeDir := filepath.Join(dir, fmt.Sprintf("node-%d", i))
		if out, err := runWeir(t, "broker-secret\n", "user", "add", "broker", "--mechanism", "SCRAM-SHA-512", "--password-stdin", "--data", nodeDir); err != nil {
			t.Fatalf("weir user add --data: %v\n%s", err, out)
		}
	}
	c, err := testsvc.StartCluster(weirBin, dir, 3,
		"--set", "listener.security.protocol.map=PLAINTEXT:SASL_SSL,CONTROLLER:SSL",
		"--set", "ssl.keystore.location="+f.keystore,
		"--set", "ssl.truststore.location="+f.truststore,
		"--set", "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
		"--set", "super.users=User:broker",
		"--set", "allow.everyone.if.no.acl.found=false",
		"--set", "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512",
		"--set", `sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="broker" password="broker-secret";`)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Stop()
		if t.Failed() {
			t.Logf("node 3 log:\n%s", c.Log(2))
		}
	})
	var seeds []string
	for _, nd := range c.Nodes {
		seeds = append(seeds, nd.Addr)
	}
	tlsOpt := kgo.DialTLSConfig(f.clientTLS())
	auth := kgo.SASL(scram.Auth{User: "broker", Pass: "broker-secret"}.AsSha512Mechanism())
	appAuth := kgo.SASL(scram.Auth{User: "app", Pass: "app-secret"}.AsSha512Mechanism())
	ctx := testCtx(t)
	waitBrokersListed(t, seeds, 3, auth, tlsOpt)
	if out, err := runWeir(t, "app-secret\n", "user", "add", "app", "--password-stdin", "--brokers", strings.Join(seeds, ","),
		"--command-config", writeFile(t, filepath.Join(t.TempDir(), "broker.properties"), "security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n"+
			"sasl.username=broker\nsasl.password=broker-secret\nssl.ca.location="+f.truststore+"\n")); err != nil {
		t.Fatalf("weir user add app: %v\n%s", err, out)
	}
	// The admin talks to nodes 1 and 2 only.
	adminCl := newClient(t, seeds[0], auth, tlsOpt, kgo.SeedBrokers(seeds[:2]...))
	ct := kmsg.NewPtrCreateTopicsRequest()
	ctt := kmsg.NewCreateTopicsRequestTopic()
	ctt.Topic, ctt.NumPartitions, ctt.ReplicationFactor = "victim", -1, -1
	ra := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
	ra.Partition, ra.Replicas = 0, []int32{3, 1, 2} // node 3 leads it
	ctt.ReplicaAssignment = append(ctt.ReplicaAssignment, ra)
	ct.Topics = append(ct.Topics, ctt)
	ct.TimeoutMillis = 10000
	if resp, err := ct.RequestWith(ctx, adminCl); err != nil || resp.Topics[0].ErrorCode != 0 {
		t.Fatalf("create victim: %v %+v", err, resp)
	}
	for i := range 10 {
		if err := adminCl.ProduceSync(ctx, &kgo.Record{Topic: "victim", Value: []byte(fmt.Sprint("secret-", i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	var grants []aclEntry
	for _, op := range []kmsg.ACLOperation{kmsg.ACLOperationRead, kmsg.ACLOperationDelete} {
		grants = append(grants, aclEntry{rt: kmsg.ACLResourceTypeTopic, name: "victim", pattern: kmsg.ACLResourcePatternTypeLiteral,
			principal: "User:app", host: "*", op: op, perm: kmsg.ACLPermissionTypeAllow})
	}
	createACLs(t, adminCl, grants...)
	// Every node knows the grants before node 3 goes down.
	for _, seed := range seeds {
		waitACLCount(t, newClient(t, seed, auth, tlsOpt, kgo.SeedBrokers(seed)), 2)
	}

	c.Kill(2)
	del := kmsg.NewPtrDeleteACLsRequest()
	df := kmsg.NewDeleteACLsRequestFilter()
	principal := "User:app"
	df.ResourceType, df.ResourcePatternType = kmsg.ACLResourceTypeAny, kmsg.ACLResourcePatternTypeAny
	df.Principal, df.Operation, df.PermissionType = &principal, kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny
	del.Filters = append(del.Filters, df)
	// Node 3 may have led the quorum: retry while a new leader is chosen.
	for deadline := time.Now().Add(30 * time.Second); ; {
		dresp, err := del.RequestWith(ctx, adminCl)
		if err == nil && dresp.Results[0].ErrorCode == 0 && len(dresp.Results[0].MatchingACLs) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("DeleteAcls: %v %+v", err, dresp)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, seed := range seeds[:2] {
		waitACLCount(t, newClient(t, seed, auth, tlsOpt, kgo.SeedBrokers(seed)), 0)
	}

	// app asks node 3 from the moment it listens.
	var mu sync.Mutex
	var violations []string
	seen := map[string]int{}
	note := func(what string, err error, code int16) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			seen[what+": "+err.Error()]++
		} else {
			seen[what+": "+fmt.Sprint(kerr.ErrorForCode(code))]++
		}
	}
	violate := func(v string) {
		mu.Lock()
		defer mu.Unlock()
		if len(violations) < 5 {
			violations = append(violations, v)
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			cl, err := kgo.NewClient(kgo.SeedBrokers(seeds[2]), appAuth, tlsOpt, kgo.RequestRetries(0),
				kgo.DialTimeout(500*time.Millisecond))
			if err != nil {
				continue
			}
			node3 := cl.SeedBrokers()[0]
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			name := "victim"
			md := kmsg.NewPtrMetadataRequest()
			mt := kmsg.NewMetadataRequestTopic()
			mt.Topic = &name
			md.Topics = append(md.Topics, mt)
			resp, err := node3.Request(rctx, md)
			if err != nil {
				note("Metadata", err, 0)
				cancel()
				cl.Close()
				time.Sleep(5 * time.Millisecond)
				continue
			}
			mr := resp.(*kmsg.MetadataResponse)
			for _, t := range mr.Topics {
				note("Metadata", nil, t.ErrorCode)
				if t.ErrorCode == 0 && len(t.Partitions) > 0 {
					violate(fmt.Sprintf("Metadata described victim: %d partitions, leader %d", len(t.Partitions), t.Partitions[0].Leader))
				}
			}
			fr := kmsg.NewPtrFetchRequest()
			fr.ReplicaID, fr.MaxWaitMillis, fr.MinBytes, fr.MaxBytes = -1, 10, 1, 1<<20
			ft := kmsg.NewFetchRequestTopic()
			ft.Topic = name
			if len(mr.Topics) > 0 {
				ft.TopicID = mr.Topics[0].TopicID
			}
			fp := kmsg.NewFetchRequestTopicPartition()
			fp.PartitionMaxBytes, fp.LogStartOffset, fp.CurrentLeaderEpoch = 1<<20, -1, -1
			ft.Partitions = append(ft.Partitions, fp)
			fr.Topics = append(fr.Topics, ft)
			if resp, err := node3.Request(rctx, fr); err != nil {
				note("Fetch", err, 0)
			} else {
				for _, t := range resp.(*kmsg.FetchResponse).Topics {
					for _, p := range t.Partitions {
						note("Fetch", nil, p.ErrorCode)
						if len(p.RecordBatches) > 0 {
							violate(fmt.Sprintf("Fetch returned %d bytes of victim", len(p.RecordBatches)))
						}
					}
				}
			}
			dt := kmsg.NewPtrDeleteTopicsRequest()
			dtt := kmsg.NewDeleteTopicsRequestTopic()
			dtt.Topic = &name
			dt.Topics = append(dt.Topics, dtt)
			dt.TopicNames = []string{name}
			dt.TimeoutMillis = 5000
			if resp, err := node3.Request(rctx, dt); err != nil {
				note("DeleteTopics", err, 0)
			} else {
				for _, t := range resp.(*kmsg.DeleteTopicsResponse).Topics {
					note("DeleteTopics", nil, t.ErrorCode)
					if t.ErrorCode == 0 {
						violate("DeleteTopics deleted victim")
					}
				}
			}
			cancel()
			cl.Close()
		}
	}()
	if err := c.Start(2); err != nil {
		close(stop)
		wg.Wait()
		t.Fatal(err)
	}
	time.Sleep(10 * time.Second)
	close(stop)
	wg.Wait()
	t.Logf("node 3's answers to app: %v", seen)
	if len(violations) > 0 {
		t.Fatalf("node 3, restarted, authorized app with ACLs removed while it was down: %v", violations)
	}
}

// waitACLCount waits until cl's node lists n bindings.
func waitACLCount(t *testing.T, cl *kgo.Client, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		d := kmsg.NewPtrDescribeACLsRequest()
		d.ResourceType, d.ResourcePatternType = kmsg.ACLResourceTypeAny, kmsg.ACLResourcePatternTypeAny
		d.Operation, d.PermissionType = kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny
		var got int
		resp, err := cl.SeedBrokers()[0].Request(testCtx(t), d)
		if err == nil {
			for _, r := range resp.(*kmsg.DescribeACLsResponse).Resources {
				got += len(r.ACLs)
			}
			if got == n {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the node lists %d bindings (%v), want %d", got, err, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
