/* parser.y — the grammar of gptc model files (docs/language.md describes it).
 *
 * A file is a list of statements, each ended by ';' (the lexer inserts one at the end of
 * a line that can end a statement, and before a '}' that closes one). Whether a statement
 * is allowed where it stands (a param inside a fn, a return at top level…) is checked by
 * elab.c, which reports it with its location; the grammar only fixes the shapes.
 * Errors recover at the next ';', so one run reports every broken line. */
%define api.pure full
%define parse.error custom
%define parse.lac full
%locations
%expect 0
%lex-param { void *scanner }
%parse-param { void *scanner } { ParseCtx *ctx }

%code requires {
#include "frontend/frontend.h"
}

%union {
    Node *node;
    struct { Node *head, *tail; } list;
}

%code {
#include "lexer.h"
static void yyerror(YYLTYPE *loc, void *scanner, ParseCtx *ctx, const char *msg);

static Loc L(ParseCtx *ctx, YYLTYPE l) { return (Loc){ctx->src, l.first_line, l.first_column}; }
static Node *mk(ParseCtx *ctx, NodeKind k, YYLTYPE l) { return ast_new(ctx->arena, k, L(ctx, l)); }
/* KEYWORD NAME = value: set, let, optim, schedule, log */
static Node *mk_def(ParseCtx *ctx, NodeKind k, YYLTYPE l, Node *ident, Node *value) {
    Node *n = mk(ctx, k, l); n->name = ident->name; n->def.ident = ident; n->def.value = value; return n;
}
/* override let … / override schedule … / override fn …: the statement it wraps replaces
 * the definition of the same name in an included file (override.c) */
static Node *mk_override(ParseCtx *ctx, YYLTYPE l, Node *def) {
    Node *n = mk(ctx, N_OVERRIDE, l); n->name = def->name; n->over.def = def; return n;
}
static Node *mk_unary(ParseCtx *ctx, YYLTYPE l, int op, Node *operand) {
    Node *n = mk(ctx, N_UNARY, l); n->op = op; n->unary.operand = operand; return n;
}
static Node *mk_binary(ParseCtx *ctx, YYLTYPE l, int op, Node *lhs, Node *rhs) {
    Node *n = mk(ctx, N_BINARY, l); n->op = op; n->binary.lhs = lhs; n->binary.rhs = rhs; return n;
}
static Node *mk_pair(ParseCtx *ctx, YYLTYPE l, Node *key, Node *value) {
    Node *n = mk(ctx, N_PAIR, l); n->pair.key = key; n->pair.value = value; return n;
}
/* for NAME < iter { body } / for NAME in iter { body }; op = '<' or T_IN */
static Node *mk_for(ParseCtx *ctx, YYLTYPE l, int op, Node *ident, Node *iter, Node *body) {
    Node *n = mk(ctx, N_FOR, l); n->op = op; n->name = ident->name;
    n->loop.ident = ident; n->loop.iter = iter; n->loop.body = body; return n;
}
/* elem for NAME < iter / elem for NAME in iter; the filter comes later */
static Node *mk_comp(ParseCtx *ctx, YYLTYPE l, int op, Node *elem, Node *ident, Node *iter) {
    Node *n = mk(ctx, N_COMP, l); n->op = op; n->name = ident->name; n->comp.elem = elem; n->comp.iter = iter; return n;
}
/* N_IF (then, els: statement lists) or N_COND (expressions) */
static Node *mk_branch(ParseCtx *ctx, NodeKind k, YYLTYPE l, Node *cond, Node *then, Node *els) {
    Node *n = mk(ctx, k, l); n->branch.cond = cond; n->branch.then = then; n->branch.els = els; return n;
}
#define APPEND(dst, src, x) do { (dst) = (src); if (x) { (x)->next = NULL; \
    if ((dst).tail) (dst).tail->next = (x); else (dst).head = (x); (dst).tail = (x); } } while (0)
#define ONE(dst, x) do { (dst).head = (dst).tail = (x); if (x) (x)->next = NULL; } while (0)
#define EMPTY(dst) do { (dst).head = (dst).tail = NULL; } while (0)
}

%token <node> T_IDENT "identifier" T_INT "integer" T_FLOAT "number" T_STRING "string"
%token T_INCLUDE "'include'" T_CONFIG "'config'" T_PRESET "'preset'" T_SET "'set'" T_LET "'let'"
%token T_PARAM "'param'" T_INPUT "'input'" T_OPTIM "'optim'" T_SCHEDULE "'schedule'" T_LOG "'log'"
%token T_PROBE "'probe'" T_FN "'fn'" T_MODEL "'model'" T_FOR "'for'" T_IN "'in'" T_IF "'if'"
%token T_THEN "'then'" T_ELSE "'else'" T_RETURN "'return'" T_AND "'and'" T_OR "'or'" T_NOT "'not'"
%token T_TRUE "'true'" T_FALSE "'false'" T_INIT "'init'" T_OPT "'opt'" T_OVERRIDE "'override'"
%token T_EQ "'=='" T_NE "'!='" T_LE "'<='" T_GE "'>='" T_FLOORDIV "'//'" T_POW "'**'"

%type <node> stmt expr postfix primary arg index_arg opt_expr block_stmt if_stmt
%type <node> param_stmt pair comp name_node fn_stmt
%type <list> stmts block args opt_args index_args names opt_names pairs overrides

%precedence T_ELSE
%left T_OR
%left T_AND
%precedence T_NOT
%nonassoc T_EQ T_NE '<' T_LE '>' T_GE T_IN
%left '+' '-'
%left '*' '/' T_FLOORDIV '%' '@'
%precedence UMINUS
%right T_POW

%start file

%%

file: stmts                     { ctx->result = $1.head; }
    ;

stmts: %empty                   { EMPTY($$); }
     | stmts ';'                { $$ = $1; }
     | stmts stmt ';'           { APPEND($$, $1, $2); }
     | stmts error ';'          { $$ = $1; yyerrok; }
     ;

block: '{' stmts '}'            { $$ = $2; }
     ;

stmt: T_INCLUDE T_STRING        { $$ = mk(ctx, N_INCLUDE, @1); $$->name = $2->name; }
    | T_CONFIG block            { $$ = mk(ctx, N_CONFIG, @1); $$->block.body = $2.head; }
    | T_PRESET name_node block
        { $$ = mk(ctx, N_PRESET, @1); $$->name = $2->name; $$->block.ident = $2; $$->block.body = $3.head; }
    | T_SET name_node '=' expr  { $$ = mk_def(ctx, N_SET, @1, $2, $4); }
    | T_LET name_node '=' expr  { $$ = mk_def(ctx, N_LET, @1, $2, $4); }
    | param_stmt
    | T_INPUT name_node ':' expr
        { $$ = mk(ctx, N_INPUT, @1); $$->name = $2->name; $$->input.ident = $2; $$->input.type = $4; }
    | T_OPTIM name_node '=' expr    { $$ = mk_def(ctx, N_OPTIM, @1, $2, $4); }
    | T_SCHEDULE name_node '=' expr { $$ = mk_def(ctx, N_SCHEDULE, @1, $2, $4); }
    | T_LOG name_node '=' expr      { $$ = mk_def(ctx, N_LOG, @1, $2, $4); }
    | T_LOG T_STRING '=' expr       { $$ = mk_def(ctx, N_LOG, @1, $2, $4); }
    | T_PROBE postfix '=' expr      { $$ = mk(ctx, N_PROBE, @1); $$->probe.path = $2; $$->probe.value = $4; }
    | fn_stmt
    | T_OVERRIDE T_LET name_node '=' expr      { $$ = mk_override(ctx, @1, mk_def(ctx, N_LET, @2, $3, $5)); }
    | T_OVERRIDE T_SCHEDULE name_node '=' expr { $$ = mk_override(ctx, @1, mk_def(ctx, N_SCHEDULE, @2, $3, $5)); }
    | T_OVERRIDE fn_stmt                       { $$ = mk_override(ctx, @1, $2); }
    | T_MODEL block             { $$ = mk(ctx, N_MODEL, @1); $$->block.body = $2.head; }
    | block_stmt
    | postfix '=' expr          { $$ = mk(ctx, N_ASSIGN, @2); $$->assign.target = $1; $$->assign.value = $3; }
    | T_RETURN expr             { $$ = mk(ctx, N_RETURN, @1); $$->ret.value = $2; }
    ;

name_node: T_IDENT ;

fn_stmt: T_FN name_node '(' opt_names ')' block
        { $$ = mk(ctx, N_FN, @1); $$->name = $2->name; $$->fn.ident = $2; $$->fn.params = $4.head;
          $$->fn.body = $6.head; }
    | T_FN name_node '(' opt_names ')' '=' expr
        { $$ = mk(ctx, N_FN, @1); $$->name = $2->name; $$->fn.ident = $2; $$->fn.params = $4.head;
          $$->fn.expr = $7; }
    ;

block_stmt: T_FOR name_node '<' expr block     { $$ = mk_for(ctx, @1, '<', $2, $4, $5.head); }
    | T_FOR name_node T_IN expr block           { $$ = mk_for(ctx, @1, T_IN, $2, $4, $5.head); }
    | if_stmt
    ;

if_stmt: T_IF expr block                    { $$ = mk_branch(ctx, N_IF, @1, $2, $3.head, NULL); }
       | T_IF expr block T_ELSE block       { $$ = mk_branch(ctx, N_IF, @1, $2, $3.head, $5.head); }
       | T_IF expr block T_ELSE if_stmt     { $$ = mk_branch(ctx, N_IF, @1, $2, $3.head, $5); $5->next = NULL; }
       ;

/* param PATH : DTYPE[SHAPE] init EXPR, [I] = EXPR … opt EXPR */
param_stmt: T_PARAM postfix ':' expr
        { $$ = mk(ctx, N_PARAM, @1); $$->param.path = $2; $$->param.type = $4; }
    | param_stmt T_INIT expr overrides
        { $$ = $1; if ($$->param.init) diag_error(ctx->diag, L(ctx, @2), "parameter has two 'init' clauses");
          $$->param.init = $3; $$->param.overrides = $4.head; }
    | param_stmt T_OPT expr
        { $$ = $1; if ($$->param.opt) diag_error(ctx->diag, L(ctx, @2), "parameter has two 'opt' clauses");
          $$->param.opt = $3; }
    ;

overrides: %empty                           { EMPTY($$); }
    | overrides ',' '[' expr ']' '=' expr   { Node *p = mk_pair(ctx, @3, $4, $7); APPEND($$, $1, p); }
    ;

opt_names: %empty               { EMPTY($$); }
         | names
         ;
names: name_node                { ONE($$, $1); }
     | names ',' name_node      { APPEND($$, $1, $3); }
     ;

expr: postfix
    | '-' expr %prec UMINUS     { $$ = mk_unary(ctx, @1, '-', $2); }
    | T_NOT expr                { $$ = mk_unary(ctx, @1, T_NOT, $2); }
    | expr '+' expr             { $$ = mk_binary(ctx, @2, '+', $1, $3); }
    | expr '-' expr             { $$ = mk_binary(ctx, @2, '-', $1, $3); }
    | expr '*' expr             { $$ = mk_binary(ctx, @2, '*', $1, $3); }
    | expr '/' expr             { $$ = mk_binary(ctx, @2, '/', $1, $3); }
    | expr T_FLOORDIV expr      { $$ = mk_binary(ctx, @2, T_FLOORDIV, $1, $3); }
    | expr '%' expr             { $$ = mk_binary(ctx, @2, '%', $1, $3); }
    | expr '@' expr             { $$ = mk_binary(ctx, @2, '@', $1, $3); }
    | expr T_POW expr           { $$ = mk_binary(ctx, @2, T_POW, $1, $3); }
    | expr T_EQ expr            { $$ = mk_binary(ctx, @2, T_EQ, $1, $3); }
    | expr T_NE expr            { $$ = mk_binary(ctx, @2, T_NE, $1, $3); }
    | expr '<' expr             { $$ = mk_binary(ctx, @2, '<', $1, $3); }
    | expr T_LE expr            { $$ = mk_binary(ctx, @2, T_LE, $1, $3); }
    | expr '>' expr             { $$ = mk_binary(ctx, @2, '>', $1, $3); }
    | expr T_GE expr            { $$ = mk_binary(ctx, @2, T_GE, $1, $3); }
    | expr T_IN expr            { $$ = mk_binary(ctx, @2, T_IN, $1, $3); }
    | expr T_AND expr           { $$ = mk_binary(ctx, @2, T_AND, $1, $3); }
    | expr T_OR expr            { $$ = mk_binary(ctx, @2, T_OR, $1, $3); }
    | T_IF expr T_THEN expr T_ELSE expr
        { $$ = mk_branch(ctx, N_COND, @1, $2, $4, $6); }
    ;

postfix: primary
    | postfix '.' name_node             { $$ = mk(ctx, N_MEMBER, @2); $$->name = $3->name; $$->member.base = $1; }
    | postfix '[' index_args ']'        { $$ = mk(ctx, N_INDEX, @2); $$->index.base = $1; $$->index.args = $3.head; }
    | postfix '(' opt_args ')'          { $$ = mk(ctx, N_CALL, @1); $$->call.callee = $1; $$->call.args = $3.head; }
    | postfix '(' comp ')'              { $$ = mk(ctx, N_GENCALL, @1); $$->call.callee = $1; $$->call.comp = $3; }
    ;

primary: T_IDENT
    | T_LOG                     { $$ = mk(ctx, N_NAME, @1); $$->name = "log"; }   /* log(x), the function */
    | T_INT
    | T_FLOAT
    | T_STRING
    | T_TRUE                    { $$ = mk(ctx, N_BOOL, @1); $$->ival = 1; }
    | T_FALSE                   { $$ = mk(ctx, N_BOOL, @1); $$->ival = 0; }
    | '(' expr ')'              { $$ = $2; }
    | '[' opt_args ']'          { $$ = mk(ctx, N_LIST, @1); $$->list.items = $2.head; }
    | '[' comp ']'              { $$ = $2; }
    | '{' '}'                   { $$ = mk(ctx, N_MAP, @1); }
    | '{' pairs '}'             { $$ = mk(ctx, N_MAP, @1); $$->list.items = $2.head; }
    | '{' pairs ';' '}'         { $$ = mk(ctx, N_MAP, @1); $$->list.items = $2.head; }
    ;

/* EXPR for NAME < BOUND [if COND]   or   EXPR for NAME in LIST [if COND] */
comp: expr T_FOR name_node '<' expr     { $$ = mk_comp(ctx, @2, '<', $1, $3, $5); }
    | expr T_FOR name_node T_IN expr    { $$ = mk_comp(ctx, @2, T_IN, $1, $3, $5); }
    | comp T_IF expr
        { $$ = $1; if ($$->comp.filter) diag_error(ctx->diag, L(ctx, @2), "comprehension has two 'if' filters");
          $$->comp.filter = $3; }
    ;

pairs: pair                     { ONE($$, $1); }
     | pairs ',' pair           { APPEND($$, $1, $3); }
     ;
pair: expr ':' expr             { $$ = mk_pair(ctx, @2, $1, $3); }
    ;

opt_args: %empty                { EMPTY($$); }
        | args
        | args ','              { $$ = $1; }
        ;
args: arg                       { ONE($$, $1); }
    | args ',' arg              { APPEND($$, $1, $3); }
    ;
arg: expr
   | name_node '=' expr         { $$ = mk(ctx, N_KWARG, @1); $$->name = $1->name; $$->kwarg.value = $3; }
   ;

index_args: %empty              { EMPTY($$); }
          | index_arg           { ONE($$, $1); }
          | index_args ',' index_arg { APPEND($$, $1, $3); }
          ;
index_arg: expr
         | opt_expr ':' opt_expr { $$ = mk(ctx, N_SLICE, @2); $$->slice.lo = $1; $$->slice.hi = $3; }
         ;
opt_expr: %empty                { $$ = NULL; }
        | expr
        ;

%%

/* "unexpected X, expected A or B", with a note on the '{' an early end of file leaves open. */
static int yyreport_syntax_error(const yypcontext_t *pc, void *scanner, ParseCtx *ctx) {
    (void)scanner;
    yysymbol_kind_t expected[6];
    int n = yypcontext_expected_tokens(pc, expected, 6);
    yysymbol_kind_t tok = yypcontext_token(pc);
    char msg[512];
    int k = snprintf(msg, sizeof msg, "unexpected %s", tok == YYSYMBOL_YYEOF ? "end of file" : yysymbol_name(tok));
    if (tok == YYSYMBOL_YYUNDEF) k = snprintf(msg, sizeof msg, "invalid token");
    if (n > 0 && n <= 5 && k < (int)sizeof msg) {
        k += snprintf(msg + k, sizeof msg - (size_t)k, ", expected ");
        for (int i = 0; i < n && k < (int)sizeof msg; i++)
            k += snprintf(msg + k, sizeof msg - (size_t)k, "%s%s", i == 0 ? "" : i == n - 1 ? " or " : ", ",
                          expected[i] == YYSYMBOL_YYEOF ? "end of file" : yysymbol_name(expected[i]));
    }
    Loc at = L(ctx, *yypcontext_location(pc));
    if (at.line == ctx->lex_error_line) return 0;   /* follows from the character reported there */
    diag_error(ctx->diag, at, "%s", msg);
    if (ctx->prev_end.line && at.line > ctx->prev_end.line && tok != YYSYMBOL_YYEOF && ctx->prev_token != ';')
        diag_note(ctx->diag, ctx->prev_end, "the statement before is not finished: a line ending here continues on the next");
    if (ctx->depth > 0 && ctx->depth <= 64 && at.line > ctx->paren_stack[ctx->depth - 1].line)
        diag_note(ctx->diag, ctx->paren_stack[ctx->depth - 1], "'%c' opened here is not closed (lines inside it continue the statement)",
                  ctx->paren_char[ctx->depth - 1]);
    else if (tok == YYSYMBOL_YYEOF && ctx->nbraces > 0 && ctx->nbraces <= 64)
        diag_note(ctx->diag, ctx->brace_stack[ctx->nbraces - 1], "'{' opened here is not closed");
    return 0;
}

static void yyerror(YYLTYPE *loc, void *scanner, ParseCtx *ctx, const char *msg) {
    (void)scanner;
    diag_error(ctx->diag, L(ctx, *loc), "%s", msg);
}

Node *fe_parse_source(Arena *arena, Diag *diag, const Source *src) {
    ParseCtx ctx = {.arena = arena, .diag = diag, .src = src};
    yyscan_t scanner;
    if (yylex_init_extra(&ctx, &scanner) != 0) {
        diag_error(diag, (Loc){0}, "cannot start the scanner");
        return NULL;
    }
    ctx.scanner = scanner;
    YY_BUFFER_STATE buf = yy_scan_bytes(src->text, (int)src->len, scanner);
    yyparse(scanner, &ctx);
    yy_delete_buffer(buf, scanner);
    yylex_destroy(scanner);
    return ctx.result;
}
