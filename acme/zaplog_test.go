package acme

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"testing"

	"go.uber.org/zap"
)

// TestZapLogger checks the bridge from certmagic's zap lines to slog: info
// lines go to debug, warnings and errors keep their level, and the fields
// (logger name included) become attributes.
func TestZapLogger(t *testing.T) {
	var buf bytes.Buffer
	zl := zapLogger(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	zl.Named("obtain").With(zap.String("identifier", "a.test")).Info("acquiring lock")
	zl.Error("could not get certificate", zap.Error(errors.New("boom")), zap.Int("attempt", 2))
	var lines []map[string]any
	for _, l := range bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n")) {
		var m map[string]any
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		lines = append(lines, m)
	}
	if len(lines) != 2 {
		t.Fatalf("got %d lines: %s", len(lines), buf.String())
	}
	if l := lines[0]; l["level"] != "DEBUG" || l["msg"] != "acquiring lock" || l["identifier"] != "a.test" || l["certmagic"] != "obtain" {
		t.Errorf("info line = %v", l)
	}
	if l := lines[1]; l["level"] != "ERROR" || l["error"] != "boom" || l["attempt"] != float64(2) {
		t.Errorf("error line = %v", l)
	}
	// A nil logger is silent, and a level the handler drops costs nothing.
	zapLogger(nil).Error("nothing")
	quiet := zapLogger(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn})))
	buf.Reset()
	quiet.Info("dropped")
	if buf.Len() != 0 {
		t.Errorf("info line written at level warn: %s", buf.String())
	}
}
