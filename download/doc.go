// Package download fetches a file over HTTP(S) into a local path, the way
// large model files need it:
//
//   - the bytes go to PATH.part and are renamed to PATH only once complete
//     and verified, so PATH never holds a partial or corrupt file;
//   - an interrupted download (network drop, Ctrl-C, context cancelled, no
//     data for Request.IdleTimeout)
//     keeps PATH.part and a small PATH.part.json holding the URL and the
//     server's validator (a strong ETag, else Last-Modified); the next Fetch
//     resumes with "Range: bytes=N-" and "If-Range: <validator>". A server
//     that answers 200 instead of 206 (Range ignored, or the file changed)
//     restarts the download from byte 0;
//   - the size (Request.Size, and the server's Content-Length or
//     Content-Range total) and the digest (Request.Digest: a hex prefix of
//     the SHA-256 or MD5 of the whole file) are checked; a mismatch deletes
//     the partial file and returns a *MismatchError giving expected and
//     actual values;
//   - an existing PATH is a cache hit: no request is made (its size is
//     checked when Request.Size is known; its digest is not recomputed);
//   - a network failure before any response (no route, DNS failure,
//     connection refused) returns an *OfflineError naming the URL and the
//     exact path where the file can be put by hand; an HTTP error status
//     returns an *HTTPError naming the URL and the status.
//
// Progress is reported through Request.Progress as (bytes done, bytes
// total), total -1 when unknown; done starts at the resumed offset and never
// decreases within one Fetch.
//
// A download holds an exclusive lock on PATH.lock (flock, released when the
// process ends): a second Fetch of the same PATH meanwhile fails at once
// saying so, instead of writing the same partial file.
package download
