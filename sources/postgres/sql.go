package postgres

import (
	"fmt"
	"strconv"
	"strings"
)

// SQL text the source generates. Every identifier is quoted; every value
// the source puts into SQL (key bounds, resume keys, cursor bounds, query
// params) is a quoted literal, so that the same statement serves a cursor,
// COPY (which takes no parameters) and Redshift's UNLOAD.

// quoteIdent quotes a Postgres identifier: "a""b".
func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// quoteLiteral quotes a string literal. With standard_conforming_strings
// off (a server setting long deprecated, still possible) backslashes are
// escapes inside '...' and are doubled too.
func quoteLiteral(s string, backslashEscapes bool) string {
	s = strings.ReplaceAll(s, `'`, `''`)
	if backslashEscapes {
		s = strings.ReplaceAll(s, `\`, `\\`)
	}
	return "'" + s + "'"
}

// relName is a table reference: schema (may be empty: the search path) and
// name, as the server spells them.
type relName struct{ schema, name string }

func (r relName) String() string {
	if r.schema == "" {
		return r.name
	}
	return r.schema + "." + r.name
}

// sql is the quoted reference.
func (r relName) sql() string {
	if r.schema == "" {
		return quoteIdent(r.name)
	}
	return quoteIdent(r.schema) + "." + quoteIdent(r.name)
}

// parseRelName reads schema.table as psql would: unquoted parts fold to
// lower case, "Quoted" parts keep theirs (and may hold dots).
func parseRelName(s string) (relName, error) {
	parts, err := splitIdent(strings.TrimSpace(s))
	if err != nil {
		return relName{}, err
	}
	switch len(parts) {
	case 1:
		return relName{name: parts[0]}, nil
	case 2:
		return relName{schema: parts[0], name: parts[1]}, nil
	}
	return relName{}, fmt.Errorf("%q is not schema.table", s)
}

// splitIdent splits a dotted, possibly quoted, identifier.
func splitIdent(s string) ([]string, error) {
	var parts []string
	for {
		if s == "" {
			return nil, fmt.Errorf("empty name")
		}
		var part string
		if s[0] == '"' {
			var b strings.Builder
			i := 1
			for ; ; i++ {
				if i >= len(s) {
					return nil, fmt.Errorf("unterminated quoted name in %q", s)
				}
				if s[i] == '"' {
					if i+1 < len(s) && s[i+1] == '"' {
						b.WriteByte('"')
						i++
						continue
					}
					break
				}
				b.WriteByte(s[i])
			}
			part, s = b.String(), s[i+1:]
		} else {
			j := strings.IndexByte(s, '.')
			if j < 0 {
				j = len(s)
			}
			part, s = strings.ToLower(strings.TrimSpace(s[:j])), s[j:]
			if strings.ContainsAny(part, `" `) {
				return nil, fmt.Errorf("%q: quote a name holding spaces or quotes", part)
			}
		}
		if part == "" {
			return nil, fmt.Errorf("empty name")
		}
		parts = append(parts, part)
		if s == "" {
			return parts, nil
		}
		if s[0] != '.' {
			return nil, fmt.Errorf("unexpected %q after a quoted name", s)
		}
		s = s[1:]
	}
}

// selectSpec is what one statement reads.
type selectSpec struct {
	cols    []string // select list items (already quoted or cast)
	from    string   // a quoted table, or (query) AS q
	where   []string // conditions, ANDed
	orderBy []string
	offset  int64
}

func (q selectSpec) sql() string {
	var b strings.Builder
	b.WriteString("SELECT ")
	b.WriteString(strings.Join(q.cols, ", "))
	b.WriteString(" FROM ")
	b.WriteString(q.from)
	if len(q.where) > 0 {
		b.WriteString(" WHERE ")
		for i, w := range q.where {
			if i > 0 {
				b.WriteString(" AND ")
			}
			b.WriteString(w)
		}
	}
	if len(q.orderBy) > 0 {
		b.WriteString(" ORDER BY ")
		b.WriteString(strings.Join(q.orderBy, ", "))
	}
	if q.offset > 0 {
		b.WriteString(" OFFSET ")
		b.WriteString(strconv.FormatInt(q.offset, 10))
	}
	return b.String()
}

// cursorName is the one cursor a split's transaction declares.
const cursorName = "backfill_split"

func declareSQL(query string) string {
	return "DECLARE " + cursorName + " NO SCROLL CURSOR FOR " + query
}

func fetchSQL(n int) string { return "FETCH FORWARD " + strconv.Itoa(n) + " FROM " + cursorName }

func copySQL(query string) string { return "COPY (" + query + ") TO STDOUT (FORMAT binary)" }

// beginSQL starts a split's transaction: on Postgres a read-only
// repeatable read one, which can take the run's exported snapshot;
// Redshift's transactions are serializable (one snapshot each) already.
func beginSQL(redshift bool) string {
	if redshift {
		return "BEGIN READ ONLY"
	}
	return "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
}

func setSnapshotSQL(id string) string { return "SET TRANSACTION SNAPSHOT " + quoteLiteral(id, false) }

// unloadSQL is Redshift's UNLOAD of query to Parquet files under prefix,
// with a manifest listing them.
func unloadSQL(query, prefix, iamRole, region, maxFileSize string) string {
	var b strings.Builder
	b.WriteString("UNLOAD (")
	b.WriteString(quoteLiteral(query, false))
	b.WriteString(") TO ")
	b.WriteString(quoteLiteral(prefix, false))
	b.WriteString(" IAM_ROLE ")
	b.WriteString(quoteLiteral(iamRole, false))
	b.WriteString(" FORMAT AS PARQUET MANIFEST ALLOWOVERWRITE")
	if maxFileSize != "" {
		b.WriteString(" MAXFILESIZE ")
		b.WriteString(maxFileSize)
	}
	if region != "" {
		b.WriteString(" REGION ")
		b.WriteString(quoteLiteral(region, false))
	}
	return b.String()
}
