package realkafka

import (
	"os"
	"path/filepath"
)

func writeTemp(dir, name, content string) (string, error) {
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "realkafka-"); err != nil {
			return "", err
		}
	}
	path := filepath.Join(dir, name)
	return path, os.WriteFile(path, []byte(content), 0o600)
}
