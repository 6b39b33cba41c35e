package s3

import (
	"context"
	"sync"

	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/sources/format"
)

// Parquet objects count their rows in their footers. Reading them at plan
// time gives the progress bar a total and an ETA from the first second:
// every footer for a listing of at most footersAll objects (one ranged GET
// each, footerWorkers at a time), else an even sample of footersSample,
// whose rows per byte times the listing's bytes is the estimate.
var (
	footersAll    = 256
	footersSample = 64
	footerWorkers = 8
)

// countParquetRows sets Rows on Parquet splits whose footers it read and
// returns an estimate of the rows of all splits (0 when it has none): the
// exact rows where known, rows per byte of the footers read elsewhere. A
// footer that cannot be read leaves its split's Rows unknown: the split
// fails when opened, naming the object.
func (s *Source) countParquetRows(ctx context.Context, splits []pipeline.Split) int64 {
	for _, sp := range splits {
		obj := sp.Info.(*object)
		if f, comp, err := format.Detect(obj.Key, s.opts); err != nil || f != format.Parquet || (comp != "" && comp != format.None) {
			return 0 // not all Parquet: no footer speaks for the rest
		}
	}
	pick := make([]int, 0, min(len(splits), footersAll))
	if len(splits) <= footersAll {
		for i := range splits {
			pick = append(pick, i)
		}
	} else {
		for j := 0; j < footersSample; j++ {
			pick = append(pick, j*len(splits)/footersSample)
		}
	}
	rows := make([]int64, len(pick))
	work := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < min(footerWorkers, len(pick)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range work {
				obj := splits[pick[j]].Info.(*object)
				n, err := format.ParquetRows(newRangeReader(ctx, s, obj), obj.Size)
				if err != nil {
					n = -1
				}
				rows[j] = n
			}
		}()
	}
	for j := range pick {
		if ctx.Err() != nil {
			break
		}
		work <- j
	}
	close(work)
	wg.Wait()
	if ctx.Err() != nil {
		return 0
	}

	var known, sampledRows, sampledBytes, allBytes int64
	exact := len(pick) == len(splits)
	for j, i := range pick {
		if rows[j] < 0 {
			continue
		}
		if exact {
			splits[i].Rows = rows[j]
			known += rows[j]
		}
		sampledRows += rows[j]
		sampledBytes += splits[i].Bytes
	}
	if sampledBytes == 0 {
		return 0
	}
	perByte := float64(sampledRows) / float64(sampledBytes)
	for _, sp := range splits {
		if !exact || sp.Rows < 0 {
			allBytes += sp.Bytes
		}
	}
	return known + int64(perByte*float64(allBytes))
}
