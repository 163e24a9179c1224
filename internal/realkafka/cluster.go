package realkafka

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Passwords of the users the cluster script creates are NAME + "-secret".
const (
	SuperUser        = "admin"
	ExporterUser     = "exporter"
	LimitedUser      = "limited"
	passwordSuffix   = "-secret"
	DefaultVersion   = "4.1.1"
	OlderVersion     = "3.9.1"
	startStopTimeout = 10 * time.Minute
)

// Password returns the password the cluster script gives user.
func Password(user string) string { return user + passwordSuffix }

// Cluster is a running cluster of scripts/kafka-cluster.sh, described by the
// cluster.env file the script writes.
type Cluster struct {
	Version       string
	Dir           string
	Plaintext     []string // bootstrap addresses per listener
	SASLPlaintext []string
	SSL           []string
	// OAuth is the OAUTH listener: OAUTHBEARER (JWTs signed with
	// OAuthKeyFile, a PKCS #8 RSA key, key ID OAuthKeyID, issuer
	// OAuthIssuer, audience OAuthAudience) and SCRAM-SHA-512, sessions
	// re-authenticated every 10 s.
	OAuth         []string
	OAuthKeyFile  string
	OAuthKeyID    string
	OAuthIssuer   string
	OAuthAudience string
	CAFile        string
	Truststore    string
	TruststorePwd string
	classpath     string
	script        string
	owned         bool // started by this process: Stop stops it
}

// StartOptions choose the cluster to start.
type StartOptions struct {
	Version  string // default DefaultVersion
	Dir      string // state directory; default a temporary one
	BasePort int    // default the script's (19092)
	Heap     string // per node, default the script's
	Log      func(format string, args ...any)
}

// RepoRoot finds the module root (the directory holding go.mod) from the
// working directory upwards.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

func scriptPath() (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "scripts", "kafka-cluster.sh"), nil
}

// Start starts a cluster through the script, with a watchdog on this
// process: if the process dies without calling Stop, the script stops the
// cluster within a second or two.
func Start(ctx context.Context, o StartOptions) (*Cluster, error) {
	script, err := scriptPath()
	if err != nil {
		return nil, err
	}
	if o.Version == "" {
		o.Version = DefaultVersion
	}
	if o.Dir == "" {
		if o.Dir, err = os.MkdirTemp("", "realkafka-"+o.Version+"-"); err != nil {
			return nil, err
		}
	}
	args := []string{"start", "--version", o.Version, "--dir", o.Dir, "--watch-pid", fmt.Sprint(os.Getpid())}
	if o.BasePort != 0 {
		args = append(args, "--base-port", fmt.Sprint(o.BasePort))
	}
	if o.Heap != "" {
		args = append(args, "--heap", o.Heap)
	}
	ctx, cancel := context.WithTimeout(ctx, startStopTimeout)
	defer cancel()
	out, err := runScript(ctx, script, args...)
	if o.Log != nil {
		o.Log("kafka-cluster.sh %s:\n%s", strings.Join(args, " "), out)
	}
	if err != nil {
		return nil, fmt.Errorf("kafka-cluster.sh start: %w\n%s", err, out)
	}
	c, err := Attach(o.Dir)
	if err != nil {
		return nil, err
	}
	c.owned = true
	return c, nil
}

func runScript(ctx context.Context, script string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "bash", append([]string{script}, args...)...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	return out.String(), err
}

// Attach describes an already running cluster from its directory's
// cluster.env; Stop leaves an attached cluster running.
func Attach(dir string) (*Cluster, error) {
	env, err := readEnvFile(filepath.Join(dir, "cluster.env"))
	if err != nil {
		return nil, fmt.Errorf("cluster in %s: %w", dir, err)
	}
	script, err := scriptPath()
	if err != nil {
		return nil, err
	}
	cp, err := os.ReadFile(env["KAFKA_CLASSPATH_FILE"])
	if err != nil {
		return nil, fmt.Errorf("classpath of the cluster in %s: %w", dir, err)
	}
	return &Cluster{
		Version:       env["KAFKA_VERSION"],
		Dir:           dir,
		Plaintext:     splitList(env["KAFKA_BOOTSTRAP_PLAINTEXT"]),
		SASLPlaintext: splitList(env["KAFKA_BOOTSTRAP_SASL_PLAINTEXT"]),
		SSL:           splitList(env["KAFKA_BOOTSTRAP_SSL"]),
		OAuth:         splitList(env["KAFKA_BOOTSTRAP_OAUTH"]),
		OAuthKeyFile:  env["KAFKA_OAUTH_SIGNING_KEY"],
		OAuthKeyID:    env["KAFKA_OAUTH_KEY_ID"],
		OAuthIssuer:   env["KAFKA_OAUTH_ISSUER"],
		OAuthAudience: env["KAFKA_OAUTH_AUDIENCE"],
		CAFile:        env["KAFKA_CA_FILE"],
		Truststore:    env["KAFKA_TRUSTSTORE"],
		TruststorePwd: env["KAFKA_TRUSTSTORE_PASSWORD"],
		classpath:     strings.TrimSpace(string(cp)),
		script:        script,
	}, nil
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func readEnvFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if ok && !strings.HasPrefix(k, "#") {
			env[k] = v
		}
	}
	return env, sc.Err()
}

// Stop stops a cluster this process started; an attached one is left alone.
func (c *Cluster) Stop(ctx context.Context) error {
	if !c.owned {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, startStopTimeout)
	defer cancel()
	out, err := runScript(ctx, c.script, "stop", "--dir", c.Dir)
	if err != nil {
		return fmt.Errorf("kafka-cluster.sh stop: %w\n%s", err, out)
	}
	return nil
}

// Bootstrap returns the comma-separated bootstrap list of addrs.
func Bootstrap(addrs []string) string { return strings.Join(addrs, ",") }

// NodeDirs are the per-node directories holding server.log and
// authorizer.log.
func (c *Cluster) NodeDirs() []string {
	dirs, _ := filepath.Glob(filepath.Join(c.Dir, "node-*"))
	return dirs
}
