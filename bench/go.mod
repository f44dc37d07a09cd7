module github.com/observekit/observe/bench

go 1.26.0

replace github.com/observekit/observe => ../
