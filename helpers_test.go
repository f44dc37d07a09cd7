package observe_test

import (
	"context"
	"log/slog"
)

func observeLog(ctx context.Context, msg string, args ...any) {
	slog.InfoContext(ctx, msg, args...)
}
