package hooks

// Internals the external tests reach.
var QuietEnd = quietEnd

// NewDispatcherForBench replaces a stopped dispatcher with a fresh one, so a benchmark can
// seed the queue first and time only the sending.
func NewDispatcherForBench(s *Service) *Dispatcher {
	s.Dispatcher = newDispatcher(s)
	return s.Dispatcher
}
