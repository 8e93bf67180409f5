package rlmm

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

type security struct {
	tls  *tls.Config
	sasl sasl.Mechanism
}

// securityFromProps builds TLS and SASL from Kafka's client properties (prefix already
// stripped). Error messages name the property but never print a secret's value.
func securityFromProps(p map[string]string) (security, error) {
	var s security
	proto := strings.ToUpper(p["security.protocol"])
	if proto == "" {
		proto = "PLAINTEXT"
	}
	useTLS, useSASL := false, false
	switch proto {
	case "PLAINTEXT":
	case "SSL":
		useTLS = true
	case "SASL_PLAINTEXT":
		useSASL = true
	case "SASL_SSL":
		useTLS, useSASL = true, true
	default:
		return s, fmt.Errorf("%w: %ssecurity.protocol=%q: want PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL", ErrConfig, PrefixCommonClient, p["security.protocol"])
	}
	if useTLS {
		t, err := tlsFromProps(p)
		if err != nil {
			return s, err
		}
		s.tls = t
	}
	if useSASL {
		m, err := saslFromProps(p)
		if err != nil {
			return s, err
		}
		s.sasl = m
	}
	return s, nil
}

func tlsFromProps(p map[string]string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	for _, k := range []string{"ssl.truststore.type", "ssl.keystore.type"} {
		if t := p[k]; t != "" && !strings.EqualFold(t, "PEM") {
			return nil, fmt.Errorf("%w: %s%s=%q: only PEM stores are supported", ErrConfig, PrefixCommonClient, k, t)
		}
	}
	if p["ssl.key.password"] != "" {
		return nil, fmt.Errorf("%w: %sssl.key.password is set: encrypted private keys are not supported, give an unencrypted PEM key", ErrConfig, PrefixCommonClient)
	}
	trust := []byte(p["ssl.truststore.certificates"])
	if loc := p["ssl.truststore.location"]; loc != "" {
		b, err := os.ReadFile(loc)
		if err != nil {
			return nil, fmt.Errorf("%w: %sssl.truststore.location: %w", ErrConfig, PrefixCommonClient, err)
		}
		trust = append(trust, '\n')
		trust = append(trust, b...)
	}
	if len(strings.TrimSpace(string(trust))) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(trust) {
			return nil, fmt.Errorf("%w: %sssl.truststore: no PEM certificate found", ErrConfig, PrefixCommonClient)
		}
		cfg.RootCAs = pool
	}
	var keyPEM, certPEM []byte
	if loc := p["ssl.keystore.location"]; loc != "" {
		b, err := os.ReadFile(loc)
		if err != nil {
			return nil, fmt.Errorf("%w: %sssl.keystore.location: %w", ErrConfig, PrefixCommonClient, err)
		}
		// Kafka's PEM key store is one file holding the private key and the certificate chain.
		keyPEM, certPEM = splitPEM(b)
	}
	if v := p["ssl.keystore.key"]; v != "" {
		keyPEM = []byte(v)
	}
	if v := p["ssl.keystore.certificate.chain"]; v != "" {
		certPEM = []byte(v)
	}
	if len(keyPEM) > 0 || len(certPEM) > 0 {
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("%w: %sssl.keystore: client certificate and key do not load: %w", ErrConfig, PrefixCommonClient, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	switch alg := p["ssl.endpoint.identification.algorithm"]; strings.ToLower(alg) {
	case "https":
	case "":
		if _, set := p["ssl.endpoint.identification.algorithm"]; set {
			// Kafka's empty value turns off host name checks but still verifies the chain.
			cfg.InsecureSkipVerify = true
			roots := cfg.RootCAs
			cfg.VerifyConnection = func(cs tls.ConnectionState) error {
				if len(cs.PeerCertificates) == 0 {
					return fmt.Errorf("tls: broker sent no certificate")
				}
				inter := x509.NewCertPool()
				for _, c := range cs.PeerCertificates[1:] {
					inter.AddCert(c)
				}
				_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter})
				return err
			}
		}
	default:
		return nil, fmt.Errorf("%w: %sssl.endpoint.identification.algorithm=%q: want https or empty", ErrConfig, PrefixCommonClient, alg)
	}
	return cfg, nil
}

func splitPEM(b []byte) (key, certs []byte) {
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return key, certs
		}
		enc := pem.EncodeToMemory(blk)
		if strings.Contains(blk.Type, "PRIVATE KEY") {
			key = append(key, enc...)
		} else {
			certs = append(certs, enc...)
		}
	}
}

var jaasOption = regexp.MustCompile(`(\w+)\s*=\s*"((?:[^"\\]|\\.)*)"`)

func saslFromProps(p map[string]string) (sasl.Mechanism, error) {
	mech := strings.ToUpper(p["sasl.mechanism"])
	if mech == "" {
		mech = "GSSAPI" // Kafka's default, which Strata does not speak
	}
	jaas := p["sasl.jaas.config"]
	if jaas == "" {
		return nil, fmt.Errorf("%w: %ssasl.jaas.config is required for SASL", ErrConfig, PrefixCommonClient)
	}
	opts := map[string]string{}
	for _, m := range jaasOption.FindAllStringSubmatch(jaas, -1) {
		opts[m[1]] = strings.ReplaceAll(m[2], `\"`, `"`)
	}
	user, pass := opts["username"], opts["password"]
	if user == "" || pass == "" {
		return nil, fmt.Errorf("%w: %ssasl.jaas.config: username and password options are required (value not shown)", ErrConfig, PrefixCommonClient)
	}
	switch mech {
	case "PLAIN":
		return plain.Auth{User: user, Pass: pass}.AsMechanism(), nil
	case "SCRAM-SHA-256":
		return scram.Auth{User: user, Pass: pass}.AsSha256Mechanism(), nil
	case "SCRAM-SHA-512":
		return scram.Auth{User: user, Pass: pass}.AsSha512Mechanism(), nil
	}
	return nil, fmt.Errorf("%w: %ssasl.mechanism=%q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", ErrConfig, PrefixCommonClient, p["sasl.mechanism"])
}
