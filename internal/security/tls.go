// Package security holds what the broker needs to know who a client is:
// TLS for SSL and SASL_SSL listeners, with the key pair and trusted CAs
// read from PEM files under Kafka's ssl.* names and reloaded when they
// change, and the principal a client certificate names.
package security

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync/atomic"
	"time"

	"github.com/weir-broker/weir/internal/config"
)

// reloadEvery is how often the PEM files are checked for changes.
const reloadEvery = time.Second

// TLS serves the broker's TLS configuration. Handshakes read the current
// key pair and CAs through an atomic pointer; a background loop replaces
// them when the files change, so no handshake waits on the disk.
type TLS struct {
	keystore, truststore string
	clientAuth           tls.ClientAuthType
	cur                  atomic.Pointer[tlsState]
	logger               *slog.Logger
}

type tlsState struct {
	cert    *tls.Certificate
	roots   *x509.CertPool // nil: the system's
	stamp   fileStamp
	tsStamp fileStamp
}

type fileStamp struct {
	mod  time.Time
	size int64
}

// NewTLS reads ssl.keystore.location (a PEM file with the private key and
// the certificate chain, leaf first), ssl.truststore.location and
// ssl.client.auth. It fails when the keystore is unset or unreadable,
// since a TLS listener without a certificate could serve no one.
func NewTLS(b *config.Broker, logger *slog.Logger) (*TLS, error) {
	t := &TLS{keystore: b.Get("ssl.keystore.location"), truststore: b.Get("ssl.truststore.location"), logger: logger}
	if t.keystore == "" {
		return nil, errors.New("a TLS listener (SSL or SASL_SSL) needs ssl.keystore.location: a PEM file holding the private key and the certificate chain")
	}
	switch b.Get("ssl.client.auth") {
	case "requested":
		t.clientAuth = tls.VerifyClientCertIfGiven
	case "required":
		t.clientAuth = tls.RequireAndVerifyClientCert
	default:
		t.clientAuth = tls.NoClientCert
	}
	st, err := t.load()
	if err != nil {
		return nil, err
	}
	t.cur.Store(st)
	return t, nil
}

func stamp(path string) (fileStamp, error) {
	if path == "" {
		return fileStamp{}, nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{mod: fi.ModTime(), size: fi.Size()}, nil
}

// load reads both files.
func (t *TLS) load() (*tlsState, error) {
	st := &tlsState{}
	var err error
	if st.stamp, err = stamp(t.keystore); err != nil {
		return nil, fmt.Errorf("ssl.keystore.location: %w", err)
	}
	pem, err := os.ReadFile(t.keystore)
	if err != nil {
		return nil, fmt.Errorf("ssl.keystore.location: %w", err)
	}
	cert, err := tls.X509KeyPair(pem, pem)
	if err != nil {
		return nil, fmt.Errorf("ssl.keystore.location %s: %w (it must hold the private key and the certificate chain in PEM)", t.keystore, err)
	}
	st.cert = &cert
	if t.truststore != "" {
		if st.tsStamp, err = stamp(t.truststore); err != nil {
			return nil, fmt.Errorf("ssl.truststore.location: %w", err)
		}
		pem, err := os.ReadFile(t.truststore)
		if err != nil {
			return nil, fmt.Errorf("ssl.truststore.location: %w", err)
		}
		st.roots = x509.NewCertPool()
		if !st.roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ssl.truststore.location %s holds no PEM certificate", t.truststore)
		}
	}
	if t.clientAuth != tls.NoClientCert && st.roots == nil {
		return nil, errors.New("ssl.client.auth asks for client certificates, which needs ssl.truststore.location: the CAs they must chain to")
	}
	return st, nil
}

// Watch reloads the files when they change, until ctx ends. A file that
// fails to load (half written, say) leaves the previous pair in use and
// is tried again at the next check.
func (t *TLS) Watch(ctx context.Context) {
	tick := time.NewTicker(reloadEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		old := t.cur.Load()
		ks, err1 := stamp(t.keystore)
		ts, err2 := stamp(t.truststore)
		if err1 != nil || err2 != nil || (ks == old.stamp && ts == old.tsStamp) {
			continue
		}
		st, err := t.load()
		if err != nil {
			t.logger.Warn("TLS files changed but do not load; still using the previous ones", "err", err)
			continue
		}
		t.cur.Store(st)
		t.logger.Info("TLS key pair and CAs reloaded", "keystore", t.keystore, "truststore", t.truststore)
	}
}

// Server is the configuration of TLS listeners: TLS 1.2 at least, the
// current key pair, and client certificates as ssl.client.auth asks.
func (t *TLS) Server() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			st := t.cur.Load()
			return &tls.Config{
				MinVersion:   tls.VersionTLS12,
				Certificates: []tls.Certificate{*st.cert},
				ClientCAs:    st.roots,
				ClientAuth:   t.clientAuth,
			}, nil
		},
	}
}

// MutualServer is the configuration of a listener only the holders of a
// key pair the truststore's CA signed may use (the metadata quorum's): TLS
// 1.2 at least and a client certificate required, whatever
// ssl.client.auth says.
func (t *TLS) MutualServer() (*tls.Config, error) {
	if t.truststore == "" {
		return nil, errors.New("an SSL controller listener requires client certificates, which needs ssl.truststore.location: the CA the nodes' key pairs chain to")
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			st := t.cur.Load()
			return &tls.Config{
				MinVersion:   tls.VersionTLS12,
				Certificates: []tls.Certificate{*st.cert},
				ClientCAs:    st.roots,
				ClientAuth:   tls.RequireAndVerifyClientCert,
			}, nil
		},
	}, nil
}

// Dialer dials peers' TLS listeners, the way a node reaches the other
// nodes: the truststore's CAs (the system's when unset) verify the peer,
// and the node presents its own key pair, which a peer requiring client
// certificates checks. verifyHost is ssl.endpoint.identification.algorithm
// being https: the peer's certificate must also name the address dialled.
// The key pair and the CAs are read at each dial, so a reload applies to
// new connections.
func (t *TLS) Dialer(verifyHost bool) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		st := t.cur.Load()
		conf := &tls.Config{
			MinVersion: tls.VersionTLS12,
			RootCAs:    st.roots,
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
				return st.cert, nil
			},
		}
		if host, _, err := net.SplitHostPort(addr); err == nil {
			conf.ServerName = host
		}
		if !verifyHost {
			// The chain is still verified; only the name is not compared.
			conf.InsecureSkipVerify = true
			conf.VerifyConnection = func(cs tls.ConnectionState) error {
				if len(cs.PeerCertificates) == 0 {
					return errors.New("the peer presented no certificate")
				}
				opts := x509.VerifyOptions{Roots: st.roots, Intermediates: x509.NewCertPool()}
				for _, ic := range cs.PeerCertificates[1:] {
					opts.Intermediates.AddCert(ic)
				}
				_, err := cs.PeerCertificates[0].Verify(opts)
				return err
			}
		}
		d := tls.Dialer{Config: conf}
		return d.DialContext(ctx, network, addr)
	}
}

// SubjectOf is how a certificate's subject is written before the mapping
// rules apply: RFC 2253 order, as Kafka prints X.500 names.
func SubjectOf(cert *x509.Certificate) string { return cert.Subject.String() }
