package demo

import (
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"
)

// kgoLogger forwards franz-go's own warnings and errors to zerolog. Churn
// and deliberate crashes make franz-go warn routinely, so its warnings land
// at debug and only its errors at warn.
type kgoLogger struct{ log zerolog.Logger }

func (l kgoLogger) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (l kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	ev := l.log.Debug()
	if level == kgo.LogLevelError {
		ev = l.log.Warn()
	}
	ev.Fields(keyvals).Msg(msg)
}
