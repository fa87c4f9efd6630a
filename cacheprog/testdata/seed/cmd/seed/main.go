package main

import (
	"fmt"

	"example.com/seed"
)

func main() { fmt.Println(seed.Seed()) }
