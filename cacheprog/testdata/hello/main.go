package main

import (
	"fmt"

	"example.com/hello/greet"
)

func main() { fmt.Println(greet.Hello("world")) }
