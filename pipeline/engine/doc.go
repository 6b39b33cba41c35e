// Package engine runs a pipeline: it plans the splits, reads them with a
// pool of split workers, passes each batch through the transforms to the
// sink, keeps one account of what became of every row, and saves the
// acknowledged progress as it goes.
//
//	plan -> split workers -> transforms -> sink -> acknowledgements -> checkpoint
//
// A Run is that sequence as named steps (see Run.Run); ../DESIGN.md says
// why it is shaped so.
package engine
