package sqlite

import "context"

// AppliedMigrations lists the migration versions goose recorded, one entry per application.
func AppliedMigrations(ctx context.Context, s *Store) ([]int64, error) {
	rows, err := s.r.QueryContext(ctx,
		"SELECT version_id FROM goose_db_version WHERE version_id > 0 AND is_applied ORDER BY id")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
