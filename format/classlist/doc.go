// Package classlist parses the class lists that commands take (--classes):
// names inline ("cat,dog") or a file with one name a line. It is the only
// class-list parser of the repository. It imports only the standard library.
//
// # Rules
//
// Resolve decides between the two forms: a spec that names a list the
// command knows (e.g. "voc") is that list; a spec containing a path
// separator or ending in ".txt", or naming an existing file, is a file;
// anything else is an inline list.
//
// Inline: names separated by commas; white space around each name is
// trimmed; an empty name ("a,,b", a trailing comma) is an error naming its
// position (1-based).
//
// File: one name a line (LF or CRLF); white space around a name is trimmed;
// blank lines are skipped; a line whose first non-space character is '#' is
// a comment. Inside a name, spaces, commas and '#' are kept ("traffic
// light").
//
// Both: a name listed twice is an error naming both positions (the line
// numbers for a file); an empty list is an error.
package classlist
