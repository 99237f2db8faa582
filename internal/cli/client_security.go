package cli

// Client security settings for every client command: --command-config
// names a properties file in Kafka's client names (the Java client's or
// librdkafka's, where they differ), as Kafka's own tools take it, and
// --command-property KEY=VALUE sets one over the file's (KIP-1147):
//
//	security.protocol=SASL_SSL
//	sasl.mechanism=SCRAM-SHA-512            (librdkafka: sasl.mechanisms)
//	sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="app" password="secret";
//	                                        (librdkafka: sasl.username, sasl.password)
//	ssl.truststore.location=ca.pem          (librdkafka: ssl.ca.location; PEM only)
//	ssl.keystore.location=client.pem        (key and certificate chain, PEM;
//	                                         librdkafka: ssl.certificate.location and ssl.key.location)
//	ssl.endpoint.identification.algorithm=  (empty: do not check the broker's name)

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/weir-broker/weir/internal/config"
	"github.com/weir-broker/weir/internal/security"
)

// clientPropertyNames are the names --command-config takes; any other is
// an error, never ignored.
var clientPropertyNames = map[string]bool{
	"security.protocol": true, "sasl.mechanism": true, "sasl.mechanisms": true,
	"sasl.jaas.config": true, "sasl.username": true, "sasl.password": true,
	"ssl.truststore.location": true, "ssl.truststore.type": true, "ssl.ca.location": true,
	"ssl.keystore.location": true, "ssl.keystore.type": true,
	"ssl.certificate.location": true, "ssl.key.location": true,
	"ssl.endpoint.identification.algorithm": true, "bootstrap.servers": true,
}

// clientSecurity reads a --command-config file and the --command-property
// KEY=VALUE flags (KIP-1147) into client options; a flag's value replaces
// the file's.
func clientSecurity(path string, flags []string) ([]kgo.Opt, error) {
	if path == "" && len(flags) == 0 {
		return nil, nil
	}
	props := map[string]string{}
	if path != "" {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("--command-config: %w", err)
		}
		defer f.Close()
		if props, err = config.ReadProperties(f); err != nil {
			return nil, fmt.Errorf("--command-config %s: %w", path, err)
		}
	}
	for _, kv := range flags {
		k, v, ok := strings.Cut(kv, "=")
		if k = strings.TrimSpace(k); !ok || k == "" {
			return nil, fmt.Errorf("--command-property %q: want KEY=VALUE", kv)
		}
		props[k] = strings.TrimSpace(v)
	}
	return securityOpts(props)
}

// securityOpts turns client properties into client options.
func securityOpts(p map[string]string) ([]kgo.Opt, error) {
	for k := range p {
		if !clientPropertyNames[k] {
			return nil, fmt.Errorf("--command-config: %s is not a client security setting this command takes", k)
		}
	}
	for _, k := range []string{"ssl.truststore.type", "ssl.keystore.type"} {
		if v, ok := p[k]; ok && !strings.EqualFold(v, "PEM") {
			return nil, fmt.Errorf("--command-config: %s=%s: only PEM files are read", k, v)
		}
	}
	proto := strings.ToUpper(p["security.protocol"])
	if proto == "" {
		proto = config.Plaintext
	}
	var opts []kgo.Opt
	switch proto {
	case config.Plaintext, config.SASLPlaintext:
	case config.SSL, config.SASLSSL:
		conf, err := clientTLS(p)
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(conf))
	default:
		return nil, fmt.Errorf("--command-config: security.protocol=%s: want PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL", p["security.protocol"])
	}
	if proto == config.SASLPlaintext || proto == config.SASLSSL {
		m, err := clientSASL(p)
		if err != nil {
			return nil, err
		}
		opts = append(opts, m)
	}
	return opts, nil
}

func clientTLS(p map[string]string) (*tls.Config, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	ca := firstOf(p, "ssl.truststore.location", "ssl.ca.location")
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("--command-config: truststore: %w", err)
		}
		conf.RootCAs = x509.NewCertPool()
		if !conf.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--command-config: truststore %s holds no PEM certificate", ca)
		}
	}
	certFile, keyFile := p["ssl.certificate.location"], p["ssl.key.location"]
	if ks := p["ssl.keystore.location"]; ks != "" {
		certFile, keyFile = ks, ks
	}
	if certFile != "" || keyFile != "" {
		if certFile == "" || keyFile == "" {
			return nil, fmt.Errorf("--command-config: a client certificate needs both ssl.certificate.location and ssl.key.location (or one PEM ssl.keystore.location)")
		}
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("--command-config: client certificate: %w", err)
		}
		conf.Certificates = []tls.Certificate{pair}
	}
	if alg, ok := p["ssl.endpoint.identification.algorithm"]; ok && alg == "" {
		// The chain is still verified; only the broker's name is not.
		roots := conf.RootCAs
		conf.InsecureSkipVerify = true
		conf.VerifyConnection = func(cs tls.ConnectionState) error {
			opts := x509.VerifyOptions{Roots: roots, Intermediates: x509.NewCertPool()}
			for _, c := range cs.PeerCertificates[1:] {
				opts.Intermediates.AddCert(c)
			}
			_, err := cs.PeerCertificates[0].Verify(opts)
			return err
		}
	}
	return conf, nil
}

func clientSASL(p map[string]string) (kgo.Opt, error) {
	mech := strings.ToUpper(firstOf(p, "sasl.mechanism", "sasl.mechanisms"))
	if mech == "" {
		mech = security.Plain // Kafka's default mechanism for clients is GSSAPI, not served; PLAIN is librdkafka's
	}
	user, pass := p["sasl.username"], p["sasl.password"]
	if jaas := p["sasl.jaas.config"]; jaas != "" {
		var err error
		if user, pass, err = security.JAASCredentials(jaas); err != nil {
			return nil, fmt.Errorf("--command-config: %w", err)
		}
	}
	if user == "" {
		return nil, fmt.Errorf("--command-config: SASL needs a user: sasl.jaas.config, or sasl.username and sasl.password")
	}
	switch mech {
	case security.Plain:
		return kgo.SASL(plain.Auth{User: user, Pass: pass}.AsMechanism()), nil
	case security.ScramSHA256:
		return kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha256Mechanism()), nil
	case security.ScramSHA512:
		return kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha512Mechanism()), nil
	}
	return nil, fmt.Errorf("--command-config: sasl.mechanism=%s: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", mech)
}

func firstOf(p map[string]string, names ...string) string {
	for _, n := range names {
		if v := p[n]; v != "" {
			return v
		}
	}
	return ""
}
