package broker

// ApiVersions v0-4. A request above v4 is answered by the server at v0
// with UNSUPPORTED_VERSION and these ranges (KIP-511), so clients retry
// at a version served here.

import "github.com/twmb/franz-go/pkg/kmsg"

// apiRange is one served API with its version range.
type apiRange struct{ key, min, max int16 }

// served lists exactly the APIs implemented, with the versions each file's
// header documents. Nothing is advertised that is not handled.
var served = []apiRange{
	{0, 3, 11}, // Produce: v3+ carries record batch v2
	{1, 4, 16}, // Fetch: v4+ serves record batch v2
	{2, 1, 8},  // ListOffsets
	{3, 0, 12}, // Metadata
	{8, 0, 9},  // OffsetCommit
	{9, 0, 9},  // OffsetFetch
	{10, 0, 6}, // FindCoordinator
	{11, 0, 9}, // JoinGroup
	{12, 0, 4}, // Heartbeat
	{13, 0, 5}, // LeaveGroup
	{14, 0, 5}, // SyncGroup
	{15, 0, 6}, // DescribeGroups
	{16, 0, 5}, // ListGroups
	{17, 0, 1}, // SaslHandshake (answered by internal/server; listed from v0, which librdkafka's feature check asks for, but v0's raw tokens are refused)
	{18, 0, 4}, // ApiVersions
	{19, 2, 7}, // CreateTopics
	{20, 1, 6}, // DeleteTopics
	{21, 0, 2}, // DeleteRecords
	{22, 0, 4}, // InitProducerId
	{23, 0, 4}, // OffsetForLeaderEpoch
	{24, 0, 4}, // AddPartitionsToTxn: v4 is the brokers' batched form
	{25, 0, 3}, // AddOffsetsToTxn
	{26, 0, 3}, // EndTxn
	{27, 0, 1}, // WriteTxnMarkers
	{28, 0, 3}, // TxnOffsetCommit
	{29, 0, 3}, // DescribeAcls
	{30, 0, 3}, // CreateAcls (forwarded to the metadata quorum's leader)
	{31, 0, 3}, // DeleteAcls (forwarded to the metadata quorum's leader)
	{32, 1, 4}, // DescribeConfigs
	{33, 0, 2}, // AlterConfigs
	{35, 0, 4}, // DescribeLogDirs
	{36, 0, 2}, // SaslAuthenticate (answered by internal/server)
	{37, 0, 3}, // CreatePartitions
	{42, 0, 2}, // DeleteGroups
	{43, 0, 2}, // ElectLeaders (forwarded to the active controller)
	{44, 0, 1}, // IncrementalAlterConfigs
	{45, 0, 0}, // AlterPartitionReassignments (active controller only)
	{46, 0, 0}, // ListPartitionReassignments (active controller only)
	{47, 0, 0}, // OffsetDelete
	{48, 0, 1}, // DescribeClientQuotas
	{49, 0, 1}, // AlterClientQuotas (forwarded to the metadata quorum's leader)
	{50, 0, 0}, // DescribeUserScramCredentials
	{51, 0, 0}, // AlterUserScramCredentials (forwarded to the metadata quorum's leader)
	{55, 0, 2}, // DescribeQuorum
	{56, 0, 3}, // AlterPartition (active controller only)
	{60, 0, 2}, // DescribeCluster
	{61, 0, 0}, // DescribeProducers
	{63, 0, 2}, // BrokerHeartbeat (active controller only)
	{65, 0, 0}, // DescribeTransactions
	{66, 0, 1}, // ListTransactions
	{68, 0, 1}, // ConsumerGroupHeartbeat (KIP-848)
	{69, 0, 1}, // ConsumerGroupDescribe (KIP-848)
}

// APIVersions implements server.Handler.
func (b *Broker) APIVersions() []kmsg.ApiVersionsResponseApiKey {
	keys := make([]kmsg.ApiVersionsResponseApiKey, len(served))
	for i, s := range served {
		keys[i] = kmsg.ApiVersionsResponseApiKey{ApiKey: s.key, MinVersion: s.min, MaxVersion: s.max}
	}
	return keys
}

func (b *Broker) handleApiVersions(req *kmsg.ApiVersionsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ApiVersionsResponse)
	resp.ApiKeys = b.APIVersions()
	return resp
}
