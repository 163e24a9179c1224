package realkafka

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
)

// Main classes of the Java tools, in kafka-tools.
const (
	ConsumerGroupCommand = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"
	VerifiableConsumer   = "org.apache.kafka.tools.VerifiableConsumer"
	VerifiableProducer   = "org.apache.kafka.tools.VerifiableProducer"
)

// javaArgs is the java command line running class with the cluster's
// classpath: a small heap, fast start-up, warnings to stderr only.
func (c *Cluster) javaArgs(class string, args ...string) []string {
	logOpt := "-Dlog4j2.configurationFile=" + filepath.Join(filepath.Dir(c.script), "kafka", "tools-log4j2.xml")
	if strings.HasPrefix(c.Version, "3.") {
		logOpt = "-Dlog4j.configuration=file:" + filepath.Join(filepath.Dir(c.script), "kafka", "tools-log4j.properties")
	}
	jvm := []string{"-Xmx192m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true", logOpt, "-cp", c.classpath, class}
	return append(jvm, args...)
}

// RunJava runs a Java tool to completion and returns its standard output;
// the error carries standard error.
func (c *Cluster) RunJava(ctx context.Context, class string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "java", c.javaArgs(class, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w\n%s", filepath.Ext(class)[1:], strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// StartJava starts a long-running Java tool.
func (c *Cluster) StartJava(name, class string, onStdout, onStderr LineFunc, args ...string) (*Proc, error) {
	return StartProc(name, nil, onStdout, onStderr, "java", c.javaArgs(class, args...)...)
}
