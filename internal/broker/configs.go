package broker

// DescribeConfigs v1-4, AlterConfigs v0-2, IncrementalAlterConfigs v0-1.
// Topic configs are dynamic and stored in the metadata log; broker configs
// are static (from the properties file, environment or flags) and can be
// described but not altered at run time. Synonyms (v1+) list the topic
// override, then the broker config it shadows, then the default.

import (
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-broker/weir/internal/config"
	"github.com/weir-broker/weir/internal/controller"
	"github.com/weir-broker/weir/internal/metadata"
)

func (b *Broker) handleDescribeConfigs(req *kmsg.DescribeConfigsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DescribeConfigsResponse)
	for _, r := range req.Resources {
		rr := kmsg.NewDescribeConfigsResponseResource()
		rr.ResourceType, rr.ResourceName = r.ResourceType, r.ResourceName
		var err error
		switch r.ResourceType {
		case kmsg.ConfigResourceTypeTopic:
			rr.Configs, err = b.describeTopicConfigs(r.ResourceName, r.ConfigNames, req.IncludeSynonyms, req.IncludeDocumentation)
		case kmsg.ConfigResourceTypeBroker:
			rr.Configs, err = b.describeBrokerConfigs(r.ResourceName, r.ConfigNames, req.IncludeSynonyms, req.IncludeDocumentation)
		default:
			err = &controller.Error{Code: kerr.InvalidRequest, Msg: "resource type " + r.ResourceType.String() + " is not supported"}
		}
		rr.ErrorCode, rr.ErrorMessage = errCode(err), errMessage(err)
		resp.Resources = append(resp.Resources, rr)
	}
	return resp
}

func wanted(names []string) func(string) bool {
	if names == nil {
		return func(string) bool { return true }
	}
	set := make(map[string]bool, len(names))
	for _, n := range names {
		set[n] = true
	}
	return func(n string) bool { return set[n] }
}

func (b *Broker) describeTopicConfigs(topic string, names []string, synonyms, docs bool) ([]kmsg.DescribeConfigsResponseResourceConfig, error) {
	var overrides map[string]string
	found := false
	b.ctrl.View(func(im *metadata.Image) {
		if t, ok := im.Topics[topic]; ok {
			found, overrides = true, t.Configs
		}
	})
	if !found {
		return nil, &controller.Error{Code: kerr.UnknownTopicOrPartition, Msg: "topic " + topic + " does not exist"}
	}
	want := wanted(names)
	var out []kmsg.DescribeConfigsResponseResourceConfig
	for _, name := range config.TopicNames() {
		if !want(name) {
			continue
		}
		def, _ := config.LookupTopic(name)
		c := kmsg.NewDescribeConfigsResponseResourceConfig()
		c.Name = name
		c.ConfigType = kmsg.ConfigType(def.Type)
		if docs {
			c.Documentation = &def.Doc
		}
		brokerValue := b.settings.Get(def.Name)
		brokerSource := kmsg.ConfigSourceDefaultConfig
		if b.settings.IsSet(def.Name) {
			brokerSource = kmsg.ConfigSourceStaticBrokerConfig
		}
		if v, ok := overrides[name]; ok {
			c.Value, c.Source = &v, kmsg.ConfigSourceDynamicTopicConfig
			if synonyms {
				c.ConfigSynonyms = append(c.ConfigSynonyms, synonym(name, v, kmsg.ConfigSourceDynamicTopicConfig))
			}
		} else {
			c.Value, c.Source, c.IsDefault = &brokerValue, brokerSource, brokerSource == kmsg.ConfigSourceDefaultConfig
		}
		if synonyms {
			if brokerSource == kmsg.ConfigSourceStaticBrokerConfig {
				c.ConfigSynonyms = append(c.ConfigSynonyms, synonym(def.Name, brokerValue, brokerSource))
			}
			c.ConfigSynonyms = append(c.ConfigSynonyms, synonym(def.Name, def.Default, kmsg.ConfigSourceDefaultConfig))
		}
		out = append(out, c)
	}
	return out, nil
}

func synonym(name, value string, source kmsg.ConfigSource) kmsg.DescribeConfigsResponseResourceConfigConfigSynonym {
	s := kmsg.NewDescribeConfigsResponseResourceConfigConfigSynonym()
	s.Name, s.Value, s.Source = name, &value, source
	return s
}

func (b *Broker) describeBrokerConfigs(node string, names []string, synonyms, docs bool) ([]kmsg.DescribeConfigsResponseResourceConfig, error) {
	if node != "" && node != strconv.Itoa(int(b.cfg.NodeID)) {
		return nil, &controller.Error{Code: kerr.InvalidRequest, Msg: "broker " + node + " is not this node"}
	}
	want := wanted(names)
	var out []kmsg.DescribeConfigsResponseResourceConfig
	for _, name := range config.BrokerNames() {
		if !want(name) {
			continue
		}
		def, _ := config.Lookup(name)
		c := kmsg.NewDescribeConfigsResponseResourceConfig()
		c.Name, c.ReadOnly = name, true
		v := b.settings.Get(name)
		c.Value = &v
		if def.Type == config.Password {
			// A secret is never told, as Kafka answers for passwords.
			c.Value, c.IsSensitive, v = nil, true, ""
		}
		c.ConfigType = kmsg.ConfigType(def.Type)
		c.Source, c.IsDefault = kmsg.ConfigSourceDefaultConfig, true
		if b.settings.IsSet(name) {
			c.Source, c.IsDefault = kmsg.ConfigSourceStaticBrokerConfig, false
		}
		if synonyms {
			s := synonym(name, v, c.Source)
			s.Value = c.Value
			c.ConfigSynonyms = append(c.ConfigSynonyms, s)
		}
		if docs {
			c.Documentation = &def.Doc
		}
		out = append(out, c)
	}
	return out, nil
}

func errBrokerConfigStatic() error {
	return &controller.Error{Code: kerr.InvalidRequest, Msg: "broker configs are static: set them in the properties file, WEIR_* variables or flags"}
}

func errResourceType(t kmsg.ConfigResourceType) error {
	return &controller.Error{Code: kerr.InvalidRequest, Msg: "resource type " + t.String() + " is not supported"}
}

func (b *Broker) handleAlterConfigs(req *kmsg.AlterConfigsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.AlterConfigsResponse)
	for _, r := range req.Resources {
		rr := kmsg.NewAlterConfigsResponseResource()
		rr.ResourceType, rr.ResourceName = r.ResourceType, r.ResourceName
		var err error
		switch r.ResourceType {
		case kmsg.ConfigResourceTypeTopic:
			changes := make([]controller.ConfigChange, 0, len(r.Configs))
			for _, c := range r.Configs {
				changes = append(changes, controller.ConfigChange{Name: c.Name, Value: c.Value})
			}
			err = b.ctrl.AlterTopicConfigs(r.ResourceName, changes, true, req.ValidateOnly)
		case kmsg.ConfigResourceTypeBroker:
			err = errBrokerConfigStatic()
		default:
			err = errResourceType(r.ResourceType)
		}
		rr.ErrorCode, rr.ErrorMessage = errCode(err), errMessage(err)
		resp.Resources = append(resp.Resources, rr)
	}
	return resp
}

func (b *Broker) handleIncrementalAlterConfigs(req *kmsg.IncrementalAlterConfigsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.IncrementalAlterConfigsResponse)
	for _, r := range req.Resources {
		rr := kmsg.NewIncrementalAlterConfigsResponseResource()
		rr.ResourceType, rr.ResourceName = r.ResourceType, r.ResourceName
		var err error
		switch r.ResourceType {
		case kmsg.ConfigResourceTypeTopic:
			var changes []controller.ConfigChange
			changes, err = b.incrementalChanges(r.ResourceName, r.Configs)
			if err == nil {
				err = b.ctrl.AlterTopicConfigs(r.ResourceName, changes, false, req.ValidateOnly)
			}
		case kmsg.ConfigResourceTypeBroker:
			err = errBrokerConfigStatic()
		default:
			err = errResourceType(r.ResourceType)
		}
		rr.ErrorCode, rr.ErrorMessage = errCode(err), errMessage(err)
		resp.Resources = append(resp.Resources, rr)
	}
	return resp
}

// incrementalChanges turns SET/DELETE/APPEND/SUBTRACT operations into the
// resulting values; APPEND and SUBTRACT apply to list configs only.
func (b *Broker) incrementalChanges(topic string, ops []kmsg.IncrementalAlterConfigsRequestResourceConfig) ([]controller.ConfigChange, error) {
	current := b.topicConfig(topic)
	var changes []controller.ConfigChange
	for _, op := range ops {
		def, ok := config.LookupTopic(op.Name)
		if !ok {
			return nil, &controller.Error{Code: kerr.InvalidConfig, Msg: "unknown topic config " + op.Name}
		}
		switch op.Op {
		case kmsg.IncrementalAlterConfigOpSet:
			changes = append(changes, controller.ConfigChange{Name: op.Name, Value: op.Value})
		case kmsg.IncrementalAlterConfigOpDelete:
			changes = append(changes, controller.ConfigChange{Name: op.Name})
		case kmsg.IncrementalAlterConfigOpAppend, kmsg.IncrementalAlterConfigOpSubtract:
			if def.Type != config.List || op.Value == nil {
				return nil, &controller.Error{Code: kerr.InvalidConfig, Msg: op.Name + " is not a list config"}
			}
			items := splitList(current[op.Name])
			for _, v := range splitList(*op.Value) {
				items = removeItem(items, v)
				if op.Op == kmsg.IncrementalAlterConfigOpAppend {
					items = append(items, v)
				}
			}
			joined := strings.Join(items, ",")
			current[op.Name] = joined
			changes = append(changes, controller.ConfigChange{Name: op.Name, Value: &joined})
		default:
			return nil, &controller.Error{Code: kerr.InvalidRequest, Msg: "unknown config operation " + op.Op.String()}
		}
	}
	return changes, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func removeItem(items []string, v string) []string {
	out := items[:0]
	for _, it := range items {
		if it != v {
			out = append(out, it)
		}
	}
	return out
}
