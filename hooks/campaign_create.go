package hooks

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"

	"github.com/pocketbase/pocketbase/apis"
	"github.com/pocketbase/pocketbase/core"
)

// A campaign of 100,000 recipients is a 7.5 MB request. Taken whole by PocketBase's record
// create, the list is held at once as the body, its decoded form (a map per recipient),
// the record's field value and the parsed list: about 50 MB of heap for a moment, the
// appliance's memory peak. streamCampaignCreate reads the list as it arrives instead,
// checking each recipient and keeping only the encoded parts that campaign_recipients
// stores; the rest of the request goes on to PocketBase's create unchanged.

const streamedListKey = "clinicmsg.recipients"

// recipientParts is a campaign's recipient list as campaign_recipients stores it: JSON
// arrays of recipientsPerPart recipients. err is the first recipient that is not one.
type recipientParts struct {
	parts   [][]byte
	count   int
	err     error
	pending []recipient // the part being filled
}

// add appends one recipient, encoding a part once it is full. Past maxRecipients only the
// count goes on, so that an oversized list is refused without being held.
func (p *recipientParts) add(r recipient) error {
	p.count++
	if p.count > maxRecipients {
		p.pending = nil
		return nil
	}
	p.pending = append(p.pending, r)
	if len(p.pending) == recipientsPerPart {
		return p.flush()
	}
	return nil
}

// flush encodes the part being filled.
func (p *recipientParts) flush() error {
	if len(p.pending) == 0 {
		return nil
	}
	b, err := json.Marshal(p.pending)
	if err != nil {
		return fmt.Errorf("failed to encode recipients: %w", err)
	}
	p.parts = append(p.parts, b)
	p.pending = p.pending[:0]
	return nil
}

// partsOf encodes a parsed list.
func partsOf(list []recipient) (*recipientParts, error) {
	p := &recipientParts{}
	for _, r := range list {
		if err := p.add(r); err != nil {
			return nil, err
		}
	}
	return p, p.flush()
}

// streamCampaignCreate takes the recipient list out of a signed-in caller's JSON campaign
// create as it is read (see above). Other requests, and lists that are not a JSON array,
// go on untouched: the create hook answers for them as before.
func (s *Service) streamCampaignCreate(e *core.RequestEvent, _ *core.Collection) error {
	if e.Auth == nil {
		return e.Next()
	}
	if mt, _, _ := mime.ParseMediaType(e.Request.Header.Get("Content-Type")); mt != "application/json" {
		return e.Next()
	}
	br := bufio.NewReaderSize(http.MaxBytesReader(e.Response, e.Request.Body, apis.DefaultMaxBodySize), 64<<10)
	e.Request.Body = io.NopCloser(br)
	if c, err := firstByte(br); err != nil || c != '{' {
		return e.Next() // not an object: PocketBase answers it
	}
	fields, list, err := readCampaignBody(br)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return e.Error(http.StatusRequestEntityTooLarge, fmt.Sprintf("The request body is larger than %d bytes.", tooBig.Limit), nil)
		}
		return e.BadRequestError("The request body is not a valid JSON object.", nil)
	}
	body, err := json.Marshal(fields)
	if err != nil {
		return e.InternalServerError("", err)
	}
	if list != nil {
		e.Set(streamedListKey, list)
	}
	e.Request.Body = io.NopCloser(bytes.NewReader(body))
	e.Request.ContentLength = int64(len(body))
	e.Request.Header.Set("Content-Length", fmt.Sprint(len(body)))
	return e.Next()
}

// firstByte peeks at the first byte after leading white space.
func firstByte(br *bufio.Reader) (byte, error) {
	for {
		b, err := br.Peek(1)
		if err != nil {
			return 0, err
		}
		switch b[0] {
		case ' ', '\t', '\r', '\n':
			_, _ = br.ReadByte()
		default:
			return b[0], nil
		}
	}
}

// readCampaignBody reads a JSON object: its recipients, when they are an array, into
// parts; every other member as it is.
func readCampaignBody(r io.Reader) (map[string]json.RawMessage, *recipientParts, error) {
	dec := json.NewDecoder(r)
	if _, err := dec.Token(); err != nil { // the opening brace, checked by the caller
		return nil, nil, err
	}
	fields := map[string]json.RawMessage{}
	var list *recipientParts
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, err
		}
		key, _ := tok.(string)
		if key == "recipients" && nextIsArray(dec) {
			if list, err = readRecipients(dec); err != nil {
				return nil, nil, err
			}
			delete(fields, key)
			continue
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, nil, err
		}
		fields[key] = v
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, errors.New("data after the JSON object")
	}
	return fields, list, nil
}

// nextIsArray reports whether the value after the member name dec just read begins with
// '['. It looks into the decoder's buffer; when the value is not there yet it answers
// false, and the list is decoded whole (correct, only not streamed).
func nextIsArray(dec *json.Decoder) bool {
	buf := dec.Buffered()
	var one [1]byte
	for {
		if _, err := buf.Read(one[:]); err != nil {
			return false
		}
		switch one[0] {
		case ' ', '\t', '\r', '\n', ':':
			continue
		}
		return one[0] == '['
	}
}

func readRecipients(dec *json.Decoder) (*recipientParts, error) {
	if _, err := dec.Token(); err != nil { // '['
		return nil, err
	}
	list := &recipientParts{}
	for i := 0; dec.More(); i++ {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, err
		}
		if list.err != nil {
			continue // refused already; read on to the other members
		}
		r, err := parseRecipient(i, raw)
		if err != nil {
			list.err = err
			continue
		}
		if err := list.add(r); err != nil {
			return nil, err
		}
	}
	if _, err := dec.Token(); err != nil { // ']'
		return nil, err
	}
	return list, list.flush()
}
