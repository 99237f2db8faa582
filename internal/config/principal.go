package config

// ssl.principal.mapping.rules (KIP-371) turn the subject of a client's
// certificate into the principal's name. The setting is a comma-separated
// list of rules tried in order; the first that matches the whole subject
// names the principal:
//
//	RULE:pattern/replacement/     the subject matched by the regular
//	                              expression pattern, rewritten ($1 is the
//	                              first group)
//	RULE:pattern/replacement/L    the same, lower-cased (U: upper-cased)
//	DEFAULT                       the subject unchanged
//
// A subject no rule matches has no principal: its connection is refused.
// A '/' inside a pattern or replacement is written '\/'; commas inside
// them are allowed, since subjects are full of them.

import (
	"fmt"
	"regexp"
	"strings"
)

// PrincipalRule is one rule of ssl.principal.mapping.rules.
type PrincipalRule struct {
	// Default marks the DEFAULT rule; the others are unset then.
	Default     bool
	Pattern     *regexp.Regexp
	Replacement string
	// Case is 'L', 'U' or 0.
	Case byte
}

// PrincipalRules is a parsed ssl.principal.mapping.rules.
type PrincipalRules []PrincipalRule

// ParsePrincipalRules parses ssl.principal.mapping.rules.
func ParsePrincipalRules(s string) (PrincipalRules, error) {
	var rules PrincipalRules
	rest := strings.TrimSpace(s)
	for rest != "" {
		switch {
		case strings.HasPrefix(rest, "DEFAULT"):
			rules = append(rules, PrincipalRule{Default: true})
			rest = rest[len("DEFAULT"):]
		case strings.HasPrefix(rest, "RULE:"):
			var r PrincipalRule
			pattern, after, ok := cutUnescaped(rest[len("RULE:"):])
			if !ok {
				return nil, fmt.Errorf("rule %q: expected RULE:pattern/replacement/[LU]", rest)
			}
			repl, after, ok := cutUnescaped(after)
			if !ok {
				return nil, fmt.Errorf("rule %q: expected RULE:pattern/replacement/[LU]", rest)
			}
			re, err := regexp.Compile("^(?:" + pattern + ")$")
			if err != nil {
				return nil, fmt.Errorf("rule %q: pattern: %v", rest, err)
			}
			r.Pattern, r.Replacement = re, repl
			if after != "" && (after[0] == 'L' || after[0] == 'U') {
				r.Case, after = after[0], after[1:]
			}
			rules = append(rules, r)
			rest = after
		default:
			return nil, fmt.Errorf("rule %q: expected DEFAULT or RULE:pattern/replacement/[LU]", rest)
		}
		rest = strings.TrimSpace(rest)
		if rest != "" {
			if rest[0] != ',' {
				return nil, fmt.Errorf("%q: rules are separated by commas", rest)
			}
			rest = strings.TrimSpace(rest[1:])
		}
	}
	if len(rules) == 0 {
		return nil, fmt.Errorf("no rule: use DEFAULT for the subject unchanged")
	}
	return rules, nil
}

// cutUnescaped splits s at its first '/' not preceded by '\', unescaping
// the '\/' before it.
func cutUnescaped(s string) (before, after string, ok bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && i+1 < len(s) && s[i+1] == '/':
			b.WriteByte('/')
			i++
		case s[i] == '/':
			return b.String(), s[i+1:], true
		default:
			b.WriteByte(s[i])
		}
	}
	return "", "", false
}

// Map names the principal of a certificate subject, or reports that no
// rule matches it.
func (rs PrincipalRules) Map(subject string) (string, bool) {
	for _, r := range rs {
		if r.Default {
			return subject, true
		}
		m := r.Pattern.FindStringSubmatchIndex(subject)
		if m == nil {
			continue
		}
		name := string(r.Pattern.ExpandString(nil, r.Replacement, subject, m))
		switch r.Case {
		case 'L':
			name = strings.ToLower(name)
		case 'U':
			name = strings.ToUpper(name)
		}
		return name, true
	}
	return "", false
}
