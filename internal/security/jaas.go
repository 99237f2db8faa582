package security

import (
	"fmt"
	"strings"
)

// JAASCredentials reads the username and password of a JAAS entry as
// Kafka's sasl.jaas.config holds them:
//
//	org.apache.kafka.common.security.scram.ScramLoginModule required username="broker" password="secret";
//
// Values are double-quoted, with \" and \\ escaped; the login module's
// name is not checked beyond being there.
func JAASCredentials(entry string) (user, password string, err error) {
	s := strings.TrimSpace(entry)
	module, rest, ok := strings.Cut(s, " ")
	if !ok || module == "" {
		return "", "", fmt.Errorf("sasl.jaas.config: expected LoginModule required username=\"…\" password=\"…\";")
	}
	rest = strings.TrimSpace(rest)
	for _, flag := range []string{"required", "requisite", "sufficient", "optional"} {
		if strings.HasPrefix(rest, flag) {
			rest = rest[len(flag):]
			break
		}
	}
	opts := make(map[string]string)
	for {
		rest = strings.TrimSpace(rest)
		if rest == "" || rest == ";" {
			break
		}
		key, after, ok := strings.Cut(rest, "=")
		key = strings.TrimSpace(key)
		after = strings.TrimSpace(after)
		if !ok || key == "" || !strings.HasPrefix(after, `"`) {
			if !ok || key == "" || strings.ContainsAny(key, "\" ;") {
				return "", "", fmt.Errorf("sasl.jaas.config: expected name=\"value\" options after the login module")
			}
			return "", "", fmt.Errorf("sasl.jaas.config: the value of %s must be in double quotes", key)
		}
		var b strings.Builder
		i := 1
		for ; i < len(after) && after[i] != '"'; i++ {
			if after[i] == '\\' && i+1 < len(after) {
				i++
			}
			b.WriteByte(after[i])
		}
		if i >= len(after) {
			return "", "", fmt.Errorf("sasl.jaas.config: the value of %s is not closed by a quote", key)
		}
		opts[key] = b.String()
		rest = after[i+1:]
	}
	if opts["username"] == "" || opts["password"] == "" {
		return "", "", fmt.Errorf("sasl.jaas.config: username and password must both be set")
	}
	return opts["username"], opts["password"], nil
}
