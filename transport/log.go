package transport

import (
	"fmt"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// kafkaLoggers adapts zap to kafka-go's two loggers. kafka-go reports every reconnect,
// rebalance and commit on its info logger, so that goes to Debug; its error logger reports
// failures it retries itself, so those are warnings, not errors.
func kafkaLoggers(log *zap.Logger) (info, errs kafka.Logger) {
	return zapKafkaLogger(log, zapcore.DebugLevel), zapKafkaLogger(log, zapcore.WarnLevel)
}

func zapKafkaLogger(log *zap.Logger, level zapcore.Level) kafka.Logger {
	return kafka.LoggerFunc(func(format string, args ...any) {
		if ce := log.Check(level, "kafka-go"); ce != nil {
			ce.Write(zap.String("detail", fmt.Sprintf(format, args...)))
		}
	})
}

// kfakeLogger adapts zap to the embedded broker. onError, if set, sees every error the broker
// logs, which is how Close learns that persisting to the data directory failed.
type kfakeLogger struct {
	log     *zap.Logger
	onError func(msg string)
}

func (l kfakeLogger) Logf(level kfake.LogLevel, format string, args ...any) {
	var zl zapcore.Level
	switch level {
	case kfake.LogLevelError:
		zl = zapcore.ErrorLevel
	case kfake.LogLevelWarn:
		zl = zapcore.WarnLevel
	case kfake.LogLevelInfo, kfake.LogLevelDebug:
		// kfake logs every request at info; that is debugging detail for us.
		zl = zapcore.DebugLevel
	default:
		return
	}
	ce := l.log.Check(zl, "kfake")
	if ce == nil && !(zl == zapcore.ErrorLevel && l.onError != nil) {
		return
	}
	msg := fmt.Sprintf(format, args...)
	if zl == zapcore.ErrorLevel && l.onError != nil {
		l.onError(msg)
	}
	if ce != nil {
		ce.Write(zap.String("detail", msg))
	}
}
