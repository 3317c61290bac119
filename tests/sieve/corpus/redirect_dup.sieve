redirect "archive@backup.example";
redirect "archive@backup.example";
redirect "second@backup.example";
